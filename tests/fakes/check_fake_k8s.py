#!/usr/bin/env python3
"""Conformance check for tests/fakes/fake_k8s.py.

Starts the fake (``--time-scale 0.2``), writes a kubeconfig, then drives it with the real pip
``kubectl`` (``.venv/bin/kubectl``, override with $KUBECTL) and with raw HTTP (urllib), asserting
the behaviour recorded from a real kube-apiserver v1.28.7 (shared/k8s-recordings) and the test
bed's workload contract.  Standard library only.

    python3 tests/fakes/check_fake_k8s.py [-v]

Prints one line per check and ends with "N passed, M failed"; exits non-zero on any failure.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FAKE = os.path.join(HERE, "fake_k8s.py")
KUBECTL = os.environ.get("KUBECTL") or os.path.join(REPO, ".venv", "bin", "kubectl")
SCALE = 0.2
VERBOSE = "-v" in sys.argv

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    if ok:
        RESULTS["passed"] += 1
        print("ok   - %s" % name)
    else:
        RESULTS["failed"] += 1
        print("FAIL - %s%s" % (name, (": " + str(detail)[:2000]) if detail else ""))
    sys.stdout.flush()
    return ok


def wait_for(fn, timeout, interval=0.1):
    """Poll fn() until it returns a truthy value; return the last value."""
    deadline = time.time() + timeout
    val = fn()
    while not val and time.time() < deadline:
        time.sleep(interval)
        val = fn()
    return val


class Fake:
    """A running fake_k8s.py subprocess."""

    def __init__(self, tmp, name, *extra):
        self.kubeconfig = os.path.join(tmp, name + ".kubeconfig")
        self.stderr = open(os.path.join(tmp, name + ".stderr.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--time-scale", str(SCALE), "--kubeconfig",
             self.kubeconfig] + list(extra),
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("LISTENING "):
            raise SystemExit("fake did not start: %r" % line)
        self.port = int(line.split()[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        self.stderr.close()
        return rc

    # ---- raw HTTP -------------------------------------------------------------------------
    def req(self, method, path, body=None, ctype="application/json", accept="application/json",
            headers=None):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else (
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
        h = {"Accept": accept, "Authorization": "Bearer fake"}
        if data is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), raw
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None, **kw):
        code, hdrs, raw = self.req(method, path, body, **kw)
        try:
            return code, json.loads(raw.decode() or "null")
        except ValueError:
            return code, raw.decode(errors="replace")

    def watch_lines(self, path, max_seconds=10):
        """Read a watch stream to its end; returns (status, [event dicts])."""
        r = urllib.request.Request(self.base + path, headers={"Accept": "application/json"})
        lines = []
        with urllib.request.urlopen(r, timeout=max_seconds + 5) as resp:
            for raw in resp:
                if raw.strip():
                    lines.append(json.loads(raw))
            return resp.status, lines


class Kubectl:
    def __init__(self, kubeconfig, tmp):
        self.env = dict(os.environ, KUBECONFIG=kubeconfig, KUBECACHEDIR=os.path.join(tmp, "kc"),
                        HOME=tmp)

    def __call__(self, *args, timeout=90, input_text=None):
        p = subprocess.run([KUBECTL] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=timeout, input=input_text)
        if VERBOSE:
            print("  $ kubectl %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                   p.stderr))
        return p.returncode, p.stdout, p.stderr

    def json(self, *args):
        rc, out, err = self(*args, "-o", "json")
        if rc != 0:
            return None
        return json.loads(out)


def manifest(image, replicas=3, name="web"):
    return """apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %(name)s
  namespace: demo
  labels:
    app: %(name)s
spec:
  replicas: %(replicas)d
  selector:
    matchLabels:
      app: %(name)s
  template:
    metadata:
      labels:
        app: %(name)s
    spec:
      containers:
      - name: web
        image: %(image)s
        ports:
        - containerPort: 8080
          name: http
---
apiVersion: v1
kind: Service
metadata:
  name: %(name)s
  namespace: demo
  labels:
    app: %(name)s
spec:
  selector:
    app: %(name)s
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: %(name)s-config
  namespace: demo
data:
  greeting: hello
  LOG_LEVEL: info
""" % {"image": image, "replicas": replicas, "name": name}


def cond(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def deployment_checks(kc, fake, tmp):
    path = os.path.join(tmp, "app.yaml")
    with open(path, "w") as f:
        f.write(manifest("registry.example/web:1"))
    rc, out, err = kc("version")
    check("kubectl version reports the fake server v1.28.7",
          rc == 0 and "Server Version: v1.28.7" in out, out + err)

    rc, out, err = kc("apply", "--server-side", "--field-manager=deployer", "-f", path)
    check("kubectl apply --server-side creates namespace, deployment, service, configmap",
          rc == 0 and out.count("serverside-applied") == 4, out + err)
    rc, out, err = kc("-n", "demo", "rollout", "status", "deploy/web", "--timeout=60s")
    check("kubectl rollout status succeeds", rc == 0 and "successfully rolled out" in out,
          out + err)
    d = kc.json("-n", "demo", "get", "deploy", "web")
    ok = d and d["status"].get("observedGeneration") == d["metadata"]["generation"] and \
        d["status"].get("readyReplicas") == 3 and d["status"].get("updatedReplicas") == 3 and \
        cond(d, "Available").get("status") == "True" and \
        cond(d, "Progressing").get("reason") == "NewReplicaSetAvailable" and \
        "unavailableReplicas" not in d["status"]
    check("Deployment status: observedGeneration, readyReplicas 3, conditions, zero counts "
          "omitted", ok, d and d.get("status"))
    rc, out, err = kc("-n", "demo", "get", "deploy", "web", "-o", "yaml")
    check("kubectl get deploy -o yaml shows observedGeneration/readyReplicas",
          rc == 0 and "observedGeneration: 1" in out and "readyReplicas: 3" in out and
          "type: Progressing" in out, out + err)
    rc, out, err = kc("-n", "demo", "get", "pods")
    lines = out.strip().splitlines()
    check("kubectl get pods prints a table (NAME READY STATUS RESTARTS AGE, 3 Running rows)",
          rc == 0 and lines and lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS",
                                                     "AGE"]
          and sum(1 for ln in lines[1:] if " 1/1 " in ln and "Running" in ln) == 3, out + err)
    rc, out, err = kc("-n", "demo", "get", "deploy", "web")
    check("kubectl get deploy prints READY 3/3", rc == 0 and out.split()[:5] == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] and "3/3" in out, out + err)
    rss = kc.json("-n", "demo", "get", "rs", "-l", "app=web")
    first_rs = rss["items"][0]["metadata"]["name"] if rss and rss["items"] else None
    check("ReplicaSet <deploy>-<pod-template-hash> with revision 1 and replica annotations",
          first_rs and first_rs.startswith("web-") and rss["items"][0]["metadata"]["labels"].get(
              "pod-template-hash") == first_rs[4:] and rss["items"][0]["metadata"][
              "annotations"].get("deployment.kubernetes.io/revision") == "1" and
          rss["items"][0]["metadata"]["annotations"].get(
              "deployment.kubernetes.io/max-replicas") == "4", rss)

    # EndpointSlice: the service's slice lists the ready pods.
    code, sl = fake.json("GET", "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"
                         "?labelSelector=kubernetes.io%2Fservice-name%3Dweb")
    pods = kc.json("-n", "demo", "get", "pods", "-l", "app=web")
    ready_ips = sorted(p["status"]["podIP"] for p in pods["items"]
                       if any(c["type"] == "Ready" and c["status"] == "True"
                              for c in p["status"].get("conditions", [])))
    eps = sl["items"][0]["endpoints"] if code == 200 and sl["items"] else []
    slice_ready = sorted(e["addresses"][0] for e in eps if e["conditions"]["ready"])
    check("EndpointSlice of the service lists the ready pods (ports resolved to 8080)",
          len(sl["items"]) == 1 and slice_ready == ready_ips and len(ready_ips) == 3 and
          sl["items"][0]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}] and
          sl["items"][0]["metadata"]["name"].startswith("web-") and
          sl["items"][0]["metadata"]["ownerReferences"][0]["kind"] == "Service",
          sl)
    code, ep = fake.json("GET", "/api/v1/namespaces/demo/endpoints/web")
    check("core/v1 Endpoints lists the 3 ready addresses",
          code == 200 and len(ep["subsets"][0]["addresses"]) == 3, ep)

    # Crash loop: the rollout never finishes, the new pod crash-loops with growing restarts.
    crash = os.path.join(tmp, "crash.yaml")
    with open(crash, "w") as f:
        f.write(manifest("registry.example/web:crashloop"))
    rc, out, err = kc("apply", "--server-side", "--field-manager=deployer", "-f", crash)
    check("apply the crashloop image", rc == 0, out + err)
    t0 = time.time()
    rc, out, err = kc("-n", "demo", "rollout", "status", "deploy/web", "--timeout=8s")
    check("kubectl rollout status --timeout=8s fails on the crash-looping rollout",
          rc != 0 and time.time() - t0 >= 7.5 and "timed out" in err, out + err)

    def crashing_pod():
        ps = kc.json("-n", "demo", "get", "pods", "-l", "app=web")
        for p in ps["items"] if ps else []:
            for cs in p["status"].get("containerStatuses") or []:
                if (cs.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
                    return p, cs
        return None
    found = crashing_pod()
    check("crash-looping pod: waiting CrashLoopBackOff, lastState.terminated exitCode 1 Error, "
          "ready false", found and found[1]["lastState"]["terminated"]["exitCode"] == 1 and
          found[1]["lastState"]["terminated"]["reason"] == "Error" and not found[1]["ready"],
          found)
    if found:
        r1 = found[1]["restartCount"]
        time.sleep(10 * SCALE + 0.6)
        again = crashing_pod()
        check("restartCount grows every few seconds", again and again[1]["restartCount"] > r1,
              (r1, again and again[1]["restartCount"]))
    rc, out, err = kc("-n", "demo", "get", "pods")
    check("kubectl get pods shows CrashLoopBackOff", "CrashLoopBackOff" in out, out)
    d = kc.json("-n", "demo", "get", "deploy", "web")
    check("Deployment mid-rollout: replicas 4, updated 1, available 3, unavailable 1, "
          "Progressing ReplicaSetUpdated",
          d["status"].get("replicas") == 4 and d["status"].get("updatedReplicas") == 1 and
          d["status"].get("availableReplicas") == 3 and
          d["status"].get("unavailableReplicas") == 1 and
          cond(d, "Progressing").get("reason") == "ReplicaSetUpdated" and
          cond(d, "Available").get("status") == "True", d["status"])
    code, evs = fake.json("GET", "/api/v1/namespaces/demo/events?fieldSelector="
                          "involvedObject.kind%3DPod,reason%3DBackOff")
    check("kubelet BackOff events for the crash-looping pod (core/v1 field selector)",
          code == 200 and evs["items"] and evs["items"][0]["type"] == "Warning" and
          "Back-off restarting failed container" in evs["items"][0]["message"], evs)

    # Rollback re-uses the old ReplicaSet.
    rc, out, err = kc("-n", "demo", "rollout", "undo", "deploy/web")
    check("kubectl rollout undo", rc == 0 and "rolled back" in out, out + err)
    rc, out, err = kc("-n", "demo", "rollout", "status", "deploy/web", "--timeout=60s")
    check("rollout status succeeds again after undo", rc == 0 and "successfully rolled out" in out,
          out + err)
    rss = kc.json("-n", "demo", "get", "rs", "-l", "app=web")
    by = {r["metadata"]["name"]: r for r in rss["items"]}
    old = by.get(first_rs)
    check("undo re-uses the old ReplicaSet (revision 3, revision-history 1), crash RS at 0",
          len(by) == 2 and old and old["spec"]["replicas"] == 3 and
          old["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3" and
          old["metadata"]["annotations"].get("deployment.kubernetes.io/revision-history") == "1"
          and all(r["spec"]["replicas"] == 0 for n, r in by.items() if n != first_rs),
          {n: (r["spec"]["replicas"], r["metadata"]["annotations"]) for n, r in by.items()})
    d = kc.json("-n", "demo", "get", "deploy", "web")
    check("Deployment revision annotation bumped to 3",
          d["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == "3", d)

    # Server-side apply conflicts.
    rc, out, err = kc("apply", "--server-side", "--field-manager=deployer", "-f", path)
    check("deployer re-applies image 1 (shares the image with kubectl's undo)", rc == 0,
          out + err)
    scale = os.path.join(tmp, "scale.yaml")
    with open(scale, "w") as f:
        f.write("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\n"
                "spec:\n  replicas: 2\n")
    rc, out, err = kc("apply", "--server-side", "--field-manager=other", "-f", scale)
    check("SSA conflict: kubectl reports 'conflict with \"deployer\": .spec.replicas'",
          rc != 0 and 'Apply failed with 1 conflict: conflict with "deployer": .spec.replicas'
          in err, err)

    # kubectl get --watch prints events while the forced apply scales the deployment.
    wfile = os.path.join(tmp, "watch.txt")
    with open(wfile, "w") as wf:
        wproc = subprocess.Popen(["timeout", "5", KUBECTL, "-n", "demo", "get", "deploy", "-w",
                                  "--output-watch-events"], env=kc.env, stdout=wf,
                                 stderr=subprocess.STDOUT)
        time.sleep(1.5)
        rc, out, err = kc("apply", "--server-side", "--field-manager=other", "--force-conflicts",
                          "-f", scale)
        check("--force-conflicts takes .spec.replicas", rc == 0, out + err)
        wproc.wait(timeout=15)
    with open(wfile) as wf:
        wout = wf.read()
    check("kubectl get deploy -w --output-watch-events prints ADDED and MODIFIED events",
          wout.splitlines()[0].split()[:2] == ["EVENT", "NAME"] and "ADDED" in wout and
          "MODIFIED" in wout, wout)
    d = kc.json("-n", "demo", "get", "deploy", "web", "--show-managed-fields")
    mgrs = {(m["manager"], m["operation"]): m["fieldsV1"] for m in d["metadata"]["managedFields"]}
    check("managedFields: 'other' owns spec.replicas, deployer no longer does",
          mgrs.get(("other", "Apply")) == {"f:spec": {"f:replicas": {}}} and
          "f:replicas" not in mgrs.get(("deployer", "Apply"), {}).get("f:spec", {}) and
          d["spec"]["replicas"] == 2, list(mgrs))
    check("scaled to 2 replicas", wait_for(lambda: (kc.json(
        "-n", "demo", "get", "deploy", "web") or {}).get("status", {}).get("replicas") == 2, 10))

    code, evs = fake.json("GET", "/api/v1/namespaces/demo/events?fieldSelector="
                          "involvedObject.name%3Dweb,involvedObject.kind%3DDeployment")
    msgs = [e["message"] for e in evs.get("items", [])]
    check("ScalingReplicaSet events for the Deployment",
          code == 200 and any(m.startswith("Scaled up replica set web-") for m in msgs) and
          any("Scaled down replica set" in m for m in msgs), msgs)
    code, evs = fake.json("GET", "/apis/events.k8s.io/v1/namespaces/demo/events?fieldSelector="
                          "regarding.name%3Dweb")
    code2, bad = fake.json("GET", "/apis/events.k8s.io/v1/namespaces/demo/events?fieldSelector="
                           "involvedObject.name%3Dweb")
    check("events.k8s.io/v1 view (regarding.*), core field names -> 400",
          code == 200 and evs["items"] and evs["items"][0]["regarding"]["name"] == "web" and
          "note" in evs["items"][0] and code2 == 400 and
          bad["message"] == "field label not supported: involvedObject.name", (evs, bad))

    # Delete: garbage collection of ReplicaSets and pods.
    rc, out, err = kc("-n", "demo", "delete", "deploy", "web")
    check("kubectl delete deploy web", rc == 0, out + err)

    def gone():
        r = kc.json("-n", "demo", "get", "rs,pods", "-l", "app=web")
        return r is not None and not r["items"]
    check("deleting the Deployment garbage-collects its ReplicaSets and pods", wait_for(gone, 10))


def lease_checks(kc, fake, tmp):
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "deployer-lock", "namespace": "demo"},
             "spec": {"holderIdentity": "deployer-a", "leaseDurationSeconds": 15,
                      "acquireTime": "2026-11-23T06:38:03.301760Z",
                      "renewTime": "2026-11-23T06:38:03.301760Z", "leaseTransitions": 0}}
    p = os.path.join(tmp, "lease.json")
    with open(p, "w") as f:
        json.dump(lease, f)
    rc, out, err = kc("create", "-f", p)
    check("kubectl create Lease", rc == 0 and "created" in out, out + err)
    cur = kc.json("-n", "demo", "get", "lease", "deployer-lock")
    stale = json.loads(json.dumps(cur))
    cur["spec"]["renewTime"] = "2026-11-23T06:38:04.000001Z"
    with open(p, "w") as f:
        json.dump(cur, f)
    rc, out, err = kc("replace", "-f", p)
    check("kubectl replace Lease with the current resourceVersion", rc == 0, out + err)
    stale["spec"]["renewTime"] = "2026-11-23T06:38:05.000001Z"
    with open(p, "w") as f:
        json.dump(stale, f)
    rc, out, err = kc("replace", "-f", p)
    check("kubectl replace Lease with a stale resourceVersion -> 409 Conflict",
          rc != 0 and 'Operation cannot be fulfilled on leases.coordination.k8s.io '
          '"deployer-lock": the object has been modified' in err, err)
    base = "/apis/coordination.k8s.io/v1/namespaces/demo/leases/deployer-lock"
    code, body = fake.json("PUT", base, stale)
    check("raw PUT stale Lease -> 409 Status reason Conflict, details.kind leases",
          code == 409 and body["reason"] == "Conflict" and body["details"] == {
              "name": "deployer-lock", "group": "coordination.k8s.io", "kind": "leases"}, body)
    norv = json.loads(json.dumps(stale))
    del norv["metadata"]["resourceVersion"]
    code, body = fake.json("PUT", base, norv)
    check("PUT Lease without resourceVersion -> 422", code == 422 and
          body["details"]["causes"][0]["field"] == "metadata.resourceVersion", body)
    code, cur = fake.json("GET", base)
    cur["spec"]["renewTime"] = "2026-11-23T06:38:03Z"
    code, body = fake.json("PUT", base, cur)
    check("MicroTime without 6 fractional digits -> 400", code == 400 and
          "cannot parse" in body["message"], body)
    code, body = fake.json("DELETE", base, {"apiVersion": "v1", "kind": "DeleteOptions",
                                            "preconditions": {"resourceVersion": "1"}})
    check("DELETE with a stale precondition -> 409 (details.kind Lease)",
          code == 409 and body["details"]["kind"] == "Lease" and
          "does not match the ResourceVersion in record" in body["message"], body)


def raw_checks(fake):
    cm = "/api/v1/namespaces/demo/configmaps"
    apply_ct = "application/apply-patch+yaml"
    doc = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "raw", "namespace": "demo"},
           "data": {"greeting": "hello", "LOG_LEVEL": "info"}}
    code, body = fake.json("PATCH", cm + "/raw", doc, ctype=apply_ct)
    check("SSA without fieldManager -> 422", code == 422 and
          body["details"]["kind"] == "PatchOptions", body)
    code, first = fake.json("PATCH", cm + "/raw?fieldManager=deployer&force=false", doc,
                            ctype=apply_ct)
    check("SSA create -> 201", code == 201, first)
    code, again = fake.json("PATCH", cm + "/raw?fieldManager=deployer&force=false", doc,
                            ctype=apply_ct)
    check("no-op SSA keeps the resourceVersion", code == 200 and
          again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"],
          (first["metadata"], again["metadata"]))
    status, lines = fake.watch_lines(cm + "?watch=1&timeoutSeconds=1&resourceVersion=" +
                                     first["metadata"]["resourceVersion"] +
                                     "&fieldSelector=metadata.name%3Draw")
    check("... and emits no watch event", status == 200 and lines == [], lines)
    yaml_doc = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw\n  namespace: demo\n"
                "data:\n  greeting: hi\n")
    code, cut = fake.json("PATCH", cm + "/raw?fieldManager=deployer", yaml_doc, ctype=apply_ct)
    check("SSA (YAML body): a key the manager no longer applies is removed",
          code == 200 and cut["data"] == {"greeting": "hi"}, cut)
    code, body = fake.json("PATCH", cm + "/raw?fieldManager=other", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"},
        "data": {"greeting": "x"}}, ctype=apply_ct)
    check("raw SSA conflict -> 409 with FieldManagerConflict cause",
          code == 409 and body["message"] ==
          'Apply failed with 1 conflict: conflict with "deployer": .data.greeting' and
          body["details"] == {"causes": [{"reason": "FieldManagerConflict",
                                          "message": 'conflict with "deployer"',
                                          "field": ".data.greeting"}]}, body)

    # dryRun=All stores nothing.
    code, body = fake.json("POST", cm + "?dryRun=All", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"a": "b"}})
    code2, _ = fake.json("GET", cm + "/dry")
    check("dryRun=All create returns the object and stores nothing",
          code == 201 and body["metadata"]["name"] == "dry" and code2 == 404, (code, code2))
    code, body = fake.json("PATCH", cm + "/raw?fieldManager=deployer&dryRun=All", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"},
        "data": {"greeting": "dry"}}, ctype=apply_ct)
    code2, stored = fake.json("GET", cm + "/raw")
    check("dryRun=All apply returns the would-be object, storage unchanged",
          code == 200 and body["data"]["greeting"] == "dry" and
          stored["data"]["greeting"] == "hi" and
          stored["metadata"]["resourceVersion"] == cut["metadata"]["resourceVersion"],
          (body, stored))
    code, body = fake.json("DELETE", cm + "/raw?dryRun=All")
    code2, _ = fake.json("GET", cm + "/raw")
    check("dryRun=All delete keeps the object", code == 200 and code2 == 200, (code, code2))

    # Wrong content types, errors, discovery.
    code, body = fake.json("PATCH", cm + "/raw", {"data": {"x": "y"}}, ctype="application/json")
    check("PATCH with Content-Type application/json -> 415",
          code == 415 and body["message"] == "415: Unsupported Media Type", body)
    code, body = fake.json("PATCH", cm + "/raw", [{"op": "test", "path": "/data/greeting",
                                                   "value": "nope"}],
                           ctype="application/json-patch+json")
    check("json-patch failing test -> 422", code == 422 and body["reason"] == "Invalid", body)
    code, body = fake.json("GET", "/apis/apps/v1/namespaces/demo/deployments/nope")
    check("404 Status with details.kind plural", code == 404 and body["details"] == {
        "name": "nope", "group": "apps", "kind": "deployments"} and
        body["message"] == 'deployments.apps "nope" not found', body)
    code, hdrs, raw = fake.req("GET", "/apis/nope.example.com/v1")
    check("unknown API group -> text/plain 404", code == 404 and
          hdrs.get("Content-Type", "").startswith("text/plain") and
          raw == b"404 page not found\n", (code, hdrs, raw))
    agg = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    code, hdrs, raw = fake.req("GET", "/apis", accept=agg + ",application/json")
    code2, _, _ = fake.req("GET", "/apis", accept=agg.replace("v2beta1", "v2"))
    check("aggregated discovery v2beta1 served; v2-only Accept -> 406",
          code == 200 and hdrs.get("Content-Type") == agg and code2 == 406, (code, code2))
    code, body = fake.json("POST", cm + "?fieldValidation=Strict", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "spec": {}})
    check("fieldValidation=Strict unknown field -> 400", code == 400 and
          'unknown field "spec"' in body["message"], body)


def daemonset_template_generation_check(fake):
    """The registry's deprecated.daemonset.template.generation (+1 per template change only)
    and the controller's pod-template-generation label, as a real v1.28 cluster shows them."""
    base = "/apis/apps/v1/namespaces/default/daemonsets"
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a",
                                                         "image": "registry.local/agent:1"}]}}}}
    ann = "deprecated.daemonset.template.generation"
    code, created = fake.json("POST", base, ds)

    def pod_tg(want):
        pods = fake.json("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dagent")[1]
        live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 1 and \
            live[0]["metadata"]["labels"].get("pod-template-generation") == want
    check("DaemonSet create: template generation annotation 1, pod label 1",
          code == 201 and created["metadata"]["annotations"].get(ann) == "1" and
          wait_for(lambda: pod_tg("1"), 10), created["metadata"])
    code, upd = fake.json("PATCH", base + "/agent", {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "registry.local/agent:2"}]}}}},
        ctype="application/strategic-merge-patch+json")
    code2, upd2 = fake.json("PATCH", base + "/agent", {"spec": {"minReadySeconds": 1}},
                            ctype="application/merge-patch+json")
    check("template change -> annotation 2 (pod relabelled 2); other spec change -> generation "
          "3, annotation stays 2",
          code == 200 and upd["metadata"]["annotations"].get(ann) == "2" and code2 == 200 and
          upd2["metadata"]["generation"] == 3 and
          upd2["metadata"]["annotations"].get(ann) == "2" and wait_for(lambda: pod_tg("2"), 10),
          (upd["metadata"], upd2["metadata"]))
    fake.json("DELETE", base + "/agent")


def rec12_manifest(name, image, reps):
    """Recording 12's Deployment: progressDeadlineSeconds 20, maxSurge 1, maxUnavailable 0."""
    return """apiVersion: apps/v1
kind: Deployment
metadata:
  name: %(name)s
  namespace: rec12
  labels:
    app: %(name)s
spec:
  replicas: %(reps)d
  progressDeadlineSeconds: 20
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      app: %(name)s
  template:
    metadata:
      labels:
        app: %(name)s
    spec:
      containers:
      - name: web
        image: %(image)s
        ports:
        - containerPort: 8080
          name: http
""" % {"name": name, "image": image, "reps": reps}


def summary(o):
    """A Deployment/ReplicaSet event as the recording's tables show it."""
    md, s = o["metadata"], o.get("status") or {}
    ann = md.get("annotations") or {}
    out = {"kind": o["kind"], "name": md["name"], "generation": md.get("generation"),
           "arrived": o.get("_arrived"),
           "observedGeneration": s.get("observedGeneration"),
           "revision": ann.get("deployment.kubernetes.io/revision"),
           "revision-history": ann.get("deployment.kubernetes.io/revision-history"),
           "spec.replicas": (o.get("spec") or {}).get("replicas")}
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
              "unavailableReplicas"):
        out[k] = s.get(k)
    if o["kind"] == "Deployment":
        out["Progressing"] = cond(o, "Progressing")
        out["Available"] = cond(o, "Available")
    return out


def rollback_after_deadline(fake, kc, name, reps):
    """Recording 12's steps 2-3 for one Deployment; returns (timed-out condition, notready RS,
    re-used RS, [summaries of every Deployment/ReplicaSet event from the rollback apply on])."""
    kc("apply", "--server-side", "--field-manager=deployer", "-f", "-",
       input_text=rec12_manifest(name, "registry.local/web:1.0", reps))
    path = "/apis/apps/v1/namespaces/rec12/deployments/" + name
    wait_for(lambda: cond(fake.json("GET", path)[1], "Progressing").get("reason") ==
             "NewReplicaSetAvailable", 30)
    rss = fake.json("GET", "/apis/apps/v1/namespaces/rec12/replicasets")[1]["items"]
    good_rs = [r["metadata"]["name"] for r in rss if r["metadata"]["name"].startswith(name + "-")]
    kc("apply", "--server-side", "--field-manager=deployer", "-f", "-",
       input_text=rec12_manifest(name, "registry.local/web:notready", reps))
    timed_out = wait_for(lambda: cond(fake.json("GET", path)[1], "Progressing").get("reason") ==
                         "ProgressDeadlineExceeded" and fake.json("GET", path)[1], 30)
    before = cond(timed_out, "Progressing")
    rv = timed_out["metadata"]["resourceVersion"]
    events = []

    def reader(resource):
        # Each event with the moment it arrived: the hold is a time, not an order.
        r = urllib.request.Request(fake.base + "/apis/apps/v1/namespaces/rec12/%s?watch=1&"
                                   "timeoutSeconds=4&resourceVersion=%s" % (resource, rv),
                                   headers={"Accept": "application/json"})
        with urllib.request.urlopen(r, timeout=10) as resp:
            for raw in resp:
                if raw.strip():
                    e = json.loads(raw)
                    e["object"]["_arrived"] = time.time()
                    events.append(e)
    readers = [threading.Thread(target=reader, args=(r,)) for r in ("deployments",
                                                                     "replicasets")]
    for t in readers:
        t.start()
    time.sleep(0.3)
    rc, out, err = kc("apply", "--server-side", "--field-manager=deployer", "-f", "-",
                      input_text=rec12_manifest(name, "registry.local/web:1.0", reps))
    for t in readers:
        t.join(15)
    mine = [e["object"] for e in events if e["type"] == "MODIFIED" and
            (e["object"]["metadata"]["name"] == name or
             e["object"]["metadata"]["name"].startswith(name + "-"))]
    mine.sort(key=lambda o: int(o["metadata"]["resourceVersion"]))
    notready = before.get("message", "").split('"')[1] if '"' in before.get("message", "") \
        else None
    return before, notready, (good_rs or [None])[0], [summary(o) for o in mine]


def rollback_stale_condition_checks(kc, fake, tmp):
    """Recording 12: a rollback to an existing ReplicaSet after ProgressDeadlineExceeded."""
    fake.json("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec12"}})
    got = {}

    def run(name, reps, f, k):
        got[name] = rollback_after_deadline(f, k, name, reps)
    held = Fake(tmp, "held", "--stale-status-hold", "5")
    kc_held = Kubectl(held.kubeconfig, tmp)
    held.json("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec12"}})
    threads = [threading.Thread(target=run, args=a) for a in (
        ("web-one", 1, fake, kc), ("web-two", 2, fake, kc), ("web-held", 1, held, kc_held))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        rec = held.stderr.name
    finally:
        rc = held.stop()
    check("--stale-status-hold fake exits cleanly", rc == 0, rc)
    with open(rec) as f:
        log = f.read()
    check("--stale-status-hold fake logged no internal errors",
          "internal error" not in log and "crashed" not in log and "Traceback" not in log,
          log[-3000:])

    for name in ("web-one", "web-held"):
        before, notready, reused, seq = got[name]
        deps = [e for e in seq if e["kind"] == "Deployment"]
        check("%s: the notready release timed out: Progressing=False/ProgressDeadlineExceeded "
              "'ReplicaSet \"<notready RS>\" has timed out progressing.'" % name,
              before.get("status") == "False" and notready and notready != reused and
              before.get("message") == 'ReplicaSet "%s" has timed out progressing.' % notready,
              before)
        order = [(e["kind"], e["name"]) for e in seq]
        first_obs = next((i for i, e in enumerate(deps)
                          if e["observedGeneration"] == e["generation"] == 3), None)
        ok = len(deps) >= 4 and first_obs == 2 and \
            deps[0]["observedGeneration"] == 2 and deps[0]["revision"] == "2" and \
            deps[1]["observedGeneration"] == 2 and deps[1]["revision"] == "3"
        check("%s: Deployment writes: apply (obsGen 2, revision 2) -> revision 3 (obsGen 2) -> "
              "first obsGen 3 write" % name, ok, deps)
        rs_bump = next((i for i, e in enumerate(seq) if e["kind"] == "ReplicaSet" and
                        e["name"] == reused and e["revision"] == "3"), None)
        rs_down = next((i for i, e in enumerate(seq) if e["kind"] == "ReplicaSet" and
                        e["name"] == notready and e["spec.replicas"] == 0), None)
        rev_write = seq.index(deps[1]) if len(deps) > 1 else None
        stale_write = seq.index(deps[2]) if len(deps) > 2 else None
        check("%s: order: re-used RS revision 3 + revision-history 1, then the revision "
              "annotation write, then the notready RS scaled to 0, then the obsGen 3 write" % name,
              None not in (rs_bump, rev_write, rs_down, stale_write) and
              rs_bump < rev_write < rs_down < stale_write and
              seq[rs_bump]["revision-history"] == "1", order)
        stale = deps[2] if len(deps) > 2 else {}
        check("%s: first obsGen == generation status: replicas 2, updated 1, ready 1, available "
              "1, unavailable omitted, the old ProgressDeadlineExceeded copied unchanged" % name,
              stale.get("replicas") == 2 and stale.get("updatedReplicas") == 1 and
              stale.get("readyReplicas") == 1 and stale.get("availableReplicas") == 1 and
              stale.get("unavailableReplicas") is None and stale.get("Progressing") == before,
              (stale, before))
        final = deps[3] if len(deps) > 3 else {}
        fc = final.get("Progressing") or {}
        check("%s: next status: replicas 1, True/NewReplicaSetAvailable naming the re-used RS, "
              "new lastUpdateTime = lastTransitionTime" % name,
              final.get("replicas") == 1 and final.get("updatedReplicas") == 1 and
              fc.get("status") == "True" and fc.get("reason") == "NewReplicaSetAvailable" and
              fc.get("message") == 'ReplicaSet "%s" has successfully progressed.' % reused and
              fc.get("lastUpdateTime") == fc.get("lastTransitionTime") >= before.get(
                  "lastUpdateTime", "~"), final)
        check("%s: Available is never touched" % name,
              len({json.dumps(e["Available"], sort_keys=True) for e in deps}) == 1, deps)
    def stale_for(seq):
        deps = [e for e in seq if e["kind"] == "Deployment"]
        return deps[3]["arrived"] - deps[2]["arrived"] if len(deps) > 3 else None
    held_for = stale_for(got["web-held"][3])
    # Held 1 s from the write; measured between arrivals (a watch delivers the stale event a
    # little late under load), so only half of it is asserted: the default is one tick (20 ms).
    check("--stale-status-hold 5 (x 0.2): the stale status stays ~1 s before it is replaced",
          held_for is not None and held_for >= 0.5, held_for)
    before, notready, reused, seq = got["web-two"]
    deps = [e for e in seq if e["kind"] == "Deployment"]
    first = next((e for e in deps if e["observedGeneration"] == e["generation"] == 3), {})
    fp = first.get("Progressing") or {}
    check("web-two (2 replicas): the first obsGen 3 status is True/ReplicaSetUpdated naming the "
          "re-used RS (replicas 3, updated 2), never the stale deadline",
          fp.get("status") == "True" and fp.get("reason") == "ReplicaSetUpdated" and
          fp.get("message") == 'ReplicaSet "%s" is progressing.' % reused and
          first.get("replicas") == 3 and first.get("updatedReplicas") == 2 and
          not any((e.get("Progressing") or {}).get("reason") == "ProgressDeadlineExceeded"
                  for e in deps if e["observedGeneration"] == 3), deps)
    last = deps[-1] if deps else {}
    lp = last.get("Progressing") or {}
    check("web-two: then True/NewReplicaSetAvailable, lastTransitionTime kept",
          lp.get("reason") == "NewReplicaSetAvailable" and
          lp.get("lastTransitionTime") == fp.get("lastTransitionTime") and
          last.get("replicas") == 2, deps)


def watch_expiry_check(tmp):
    """Separate fake with a tiny watch history so an old resourceVersion really expires."""
    small = Fake(tmp, "small", "--watch-history", "20")
    try:
        for i in range(30):
            small.json("POST", "/api/v1/namespaces/default/configmaps",
                       {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "churn-%d" % i}})
        t0 = time.time()
        status, lines = small.watch_lines(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&timeoutSeconds=10")
        ok = status == 200 and len(lines) == 1 and lines[0]["type"] == "ERROR" and \
            lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] == "Expired" and \
            lines[0]["object"]["message"].startswith("too old resource version: 1 (") and \
            time.time() - t0 < 5
        check("watch from an expired resourceVersion -> 200, one ERROR 410 Expired, EOF", ok,
              lines)
        code, lst = small.json("GET", "/api/v1/namespaces/default/configmaps")
        rv = lst["metadata"]["resourceVersion"]
        got = []

        def reader():
            got.extend(small.watch_lines("/api/v1/namespaces/default/configmaps?watch=1&"
                                         "allowWatchBookmarks=true&timeoutSeconds=3&"
                                         "resourceVersion=" + rv)[1])
        th = threading.Thread(target=reader)
        th.start()
        time.sleep(0.3)
        small.json("POST", "/api/v1/namespaces/default/configmaps",
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
        th.join(10)
        types = [e["type"] for e in got]
        check("watch from a list resourceVersion: ADDED, then BOOKMARK before timeoutSeconds",
              types[:1] == ["ADDED"] and "BOOKMARK" in types and
              got[0]["object"]["metadata"]["name"] == "late", types)
    finally:
        rc = small.stop()
        check("fake exits cleanly on SIGTERM", rc == 0, rc)


def pod_behaviour_checks(kc, fake, tmp):
    """imagepull / notready / slowstart markers (three 1-replica Deployments at once)."""
    docs = []
    for name, image in (("web-imagepull", "registry.example/web:imagepull"),
                        ("web-notready", "registry.example/web:notready"),
                        ("web-slow", "registry.example/slowstart/web:1"),
                        ("web-big", "registry.example/web:1")):
        docs.append("""apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: demo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      containers:
      - name: web
        image: %s
%s""" % (name, name, name, image, "        resources:\n          requests:\n            cpu: "
         "\"100\"\n" if name == "web-big" else ""))
    p = os.path.join(tmp, "markers.yaml")
    with open(p, "w") as f:
        f.write("---\n".join(docs))
    t0 = time.time()
    rc, out, err = kc("apply", "--server-side", "--field-manager=deployer", "-f", p)
    check("apply imagepull/notready/slowstart/unschedulable deployments", rc == 0, out + err)

    def pod(app):
        code, lst = fake.json("GET", "/api/v1/namespaces/demo/pods?labelSelector=app%3D" + app)
        return lst["items"][0] if code == 200 and lst["items"] else None

    def ready(p):
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p["status"].get("conditions", []))
    reasons = set()
    slow_ready_at = None
    notready_samples = []
    deadline = time.time() + 20 * SCALE + 6
    while time.time() < deadline:
        ip = pod("web-imagepull")
        for cs in (ip or {}).get("status", {}).get("containerStatuses") or []:
            w = cs.get("state", {}).get("waiting")
            if w:
                reasons.add(w["reason"])
        nr = pod("web-notready")
        if nr and nr["status"].get("containerStatuses"):
            notready_samples.append((nr["status"]["phase"], ready(nr),
                                     nr["status"]["containerStatuses"][0].get("started")))
        sp = pod("web-slow")
        if sp and slow_ready_at is None and ready(sp):
            slow_ready_at = time.time() - t0
        if slow_ready_at is not None and {"ErrImagePull", "ImagePullBackOff"} <= reasons:
            break
        time.sleep(0.1)
    check("imagepull pod alternates ErrImagePull / ImagePullBackOff",
          {"ErrImagePull", "ImagePullBackOff"} <= reasons, reasons)
    ip = pod("web-imagepull")
    check("imagepull pod: phase Pending, Ready False", ip and ip["status"]["phase"] == "Pending"
          and not ready(ip), ip and ip["status"])
    check("notready pod: Running, started, Ready=False the whole time",
          len(notready_samples) > 10 and all(s == ("Running", False, True)
                                             for s in notready_samples), notready_samples[-3:])
    check("slowstart pod becomes Ready only after ~20 s x time-scale",
          slow_ready_at is not None and 20 * SCALE - 0.5 <= slow_ready_at <= 20 * SCALE + 4,
          slow_ready_at)
    big = pod("web-big")
    c = [x for x in big["status"].get("conditions", []) if x["type"] == "PodScheduled"]
    check("pod requesting 100 CPUs stays Pending with PodScheduled=False Unschedulable",
          big["status"]["phase"] == "Pending" and c and c[0]["status"] == "False" and
          c[0]["reason"] == "Unschedulable" and "Insufficient cpu" in c[0]["message"], big)
    d = kc.json("-n", "demo", "get", "deploy", "web-notready")
    check("Deployment of a never-ready pod: Available False MinimumReplicasUnavailable",
          cond(d, "Available").get("reason") == "MinimumReplicasUnavailable" and
          d["status"].get("unavailableReplicas") == 1, d["status"])


def job_body(name, script, restart="Never", **spec):
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": dict({"template": {"spec": {"containers": [{
                "name": "m", "image": spec.pop("image", "registry.example/migrate@sha256:1"),
                "command": ["sh", "-c", script]}]}}}, **spec)}
    if restart is not None:
        body["spec"]["template"]["spec"]["restartPolicy"] = restart
    return body


def job_checks(fake):
    """The Job controller (v1.28), run-to-completion pods, pods/log, and the Job refusals."""
    base = "/apis/batch/v1/namespaces/demo/jobs"
    fake.json("POST", "/api/v1/namespaces", {"metadata": {"name": "demo"}})  # 409 if it exists
    code, body = fake.json("POST", base, job_body("bad-rp", "exit 0", restart=None))
    check("Job without restartPolicy -> 422 'Required value: valid values: \"OnFailure\", "
          "\"Never\"'", code == 422 and body.get("message") ==
          'Job.batch "bad-rp" is invalid: spec.template.spec.restartPolicy: Required value: '
          'valid values: "OnFailure", "Never"', body)
    long = "j" * 64
    code, body = fake.json("POST", base, job_body(long, "exit 0"))
    check("Job named over 63 characters -> 422 on its job-name labels", code == 422 and
          body.get("message") == 'Job.batch "%s" is invalid: spec.template.labels: Invalid value: '
          '"%s": must be no more than 63 characters' % (long, long) and
          len(body["details"]["causes"]) == 2, body)

    def job(name):
        return fake.json("GET", base + "/" + name)[1]

    def finished(name):
        j = job(name)
        return j if any(c.get("status") == "True" for c in (j.get("status") or {}).get(
            "conditions") or []) else None

    def pods(name):
        return fake.json("GET", "/api/v1/namespaces/demo/pods?labelSelector=job-name%3D" +
                         name)[1].get("items") or []

    code, created = fake.json("POST", base, job_body("ok", "echo one; echo two\nsleep 1; exit 0",
                                                      ttlSecondsAfterFinished=600))
    sp = created.get("spec") or {}
    uid = created.get("metadata", {}).get("uid")
    check("Job defaults: completions/parallelism 1, backoffLimit 6, NonIndexed, not suspended, "
          "generated selector and labels, no podReplacementPolicy (alpha in 1.28)",
          code == 201 and sp.get("completions") == 1 and sp.get("parallelism") == 1 and
          sp.get("backoffLimit") == 6 and sp.get("completionMode") == "NonIndexed" and
          sp.get("suspend") is False and "podReplacementPolicy" not in sp and
          "manualSelector" not in sp and sp.get("selector") == {
              "matchLabels": {"batch.kubernetes.io/controller-uid": uid}} and
          sp["template"]["metadata"]["labels"] == {
              "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "ok",
              "controller-uid": uid, "job-name": "ok"}, created)
    j = wait_for(lambda: finished("ok"), 10)
    st = (j or {}).get("status") or {}
    check("Job success: Complete (no reason in 1.28), succeeded 1, startTime, completionTime, "
          "ready 0, uncountedTerminatedPods {}, no active",
          [c["type"] for c in st.get("conditions", [])] == ["Complete"] and
          "reason" not in st["conditions"][0] and st.get("succeeded") == 1 and
          st.get("startTime") and st.get("completionTime") and st.get("ready") == 0 and
          st.get("uncountedTerminatedPods") == {} and "active" not in st, st)
    ps = pods("ok")
    p = ps[0] if ps else {}
    import re
    cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
    ready = [c for c in p.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    check("Job pod: <job>-<5 chars>, job labels, controller ownerReference, Succeeded, "
          "terminated Completed exit 0, Ready False PodCompleted",
          len(ps) == 1 and re.match(r"^ok-[bcdfghjklmnpqrstvwxz2456789]{5}$",
                                    p["metadata"]["name"]) and
          p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == "ok" and
          p["metadata"]["ownerReferences"][0]["kind"] == "Job" and
          p["metadata"]["ownerReferences"][0]["controller"] is True and
          p["status"]["phase"] == "Succeeded" and
          cs.get("state", {}).get("terminated", {}).get("reason") == "Completed" and
          cs["state"]["terminated"]["exitCode"] == 0 and cs.get("started") is False and
          ready and ready[0]["status"] == "False" and ready[0].get("reason") == "PodCompleted", p)
    name = p.get("metadata", {}).get("name", "x")
    code, _, raw = fake.req("GET", "/api/v1/namespaces/demo/pods/%s/log" % name, accept="*/*")
    code2, _, raw2 = fake.req("GET", "/api/v1/namespaces/demo/pods/%s/log?tailLines=1&container=m"
                              % name, accept="*/*")
    check("pods/log: the echoed lines; tailLines=1 the last", (code, raw, code2, raw2) == (
        200, b"one\ntwo\n", 200, b"two\n"), (code, raw, code2, raw2))
    code, body = fake.json("GET", "/api/v1/namespaces/demo/pods/%s/log?container=x" % name)
    check("pods/log of an unknown container -> 400", code == 400 and body.get("message") ==
          "container x is not valid for pod %s" % name, body)
    code, body = fake.json("PATCH", base + "/ok", {"spec": {"template": {"spec": {"containers": [
        {"name": "m", "image": "registry.example/migrate@sha256:2"}]}}}},
        ctype="application/strategic-merge-patch+json")
    msg = body.get("message", "") if isinstance(body, dict) else ""
    check("a changed Job template -> 422 'spec.template: Invalid value: core.PodTemplateSpec{...}: "
          "field is immutable'", code == 422 and msg.startswith(
              'Job.batch "ok" is invalid: spec.template: Invalid value: core.PodTemplateSpec{') and
          msg.endswith(": field is immutable") and
          body["details"]["causes"][0]["field"] == "spec.template", body)

    fake.json("POST", base, job_body("fail", "echo boom; exit 3", backoffLimit=0))
    j = wait_for(lambda: finished("fail"), 10)
    st = (j or {}).get("status") or {}
    c = (st.get("conditions") or [{}])[0]
    p = (pods("fail") or [{}])[0]
    cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
    ready = [x for x in p.get("status", {}).get("conditions", []) if x["type"] == "Ready"]
    check("exit 3 with backoffLimit 0: Failed BackoffLimitExceeded 'Job has reached the "
          "specified backoff limit', failed 1; pod Failed, terminated Error exit 3, PodFailed",
          c.get("type") == "Failed" and c.get("reason") == "BackoffLimitExceeded" and
          c.get("message") == "Job has reached the specified backoff limit" and
          st.get("failed") == 1 and "completionTime" not in st and
          p.get("status", {}).get("phase") == "Failed" and
          cs.get("state", {}).get("terminated", {}).get("exitCode") == 3 and
          cs["state"]["terminated"]["reason"] == "Error" and ready and
          ready[0].get("reason") == "PodFailed", (st, p.get("status")))

    t0 = time.time()
    fake.json("POST", base, job_body("retry", "exit 1", backoffLimit=1))
    j = wait_for(lambda: finished("retry"), 15)
    st = (j or {}).get("status") or {}
    check("backoffLimit 1: a second pod after the 10 s (x scale) back-off, then Failed, failed 2",
          st.get("failed") == 2 and len(pods("retry")) == 2 and
          time.time() - t0 >= 10 * SCALE - 0.5 and
          st["conditions"][0].get("reason") == "BackoffLimitExceeded", st)

    fake.json("POST", base, job_body("slow", "sleep 600", activeDeadlineSeconds=3))
    j = wait_for(lambda: finished("slow"), 10)
    st = (j or {}).get("status") or {}
    c = (st.get("conditions") or [{}])[0]
    check("activeDeadlineSeconds: Failed DeadlineExceeded 'Job was active longer than specified "
          "deadline', the active pod deleted and counted failed",
          c.get("reason") == "DeadlineExceeded" and
          c.get("message") == "Job was active longer than specified deadline" and
          st.get("failed") == 1 and "active" not in st and
          wait_for(lambda: not [x for x in pods("slow")
                                if not x["metadata"].get("deletionTimestamp")], 5), st)

    fake.json("POST", base, job_body("pull", "exit 0", image="registry.example/imagepull/m:1"))

    def waiting():
        for x in pods("pull"):
            for y in x.get("status", {}).get("containerStatuses") or []:
                if y.get("state", {}).get("waiting"):
                    return x["metadata"]["name"]
        return None
    pname = wait_for(waiting, 5)
    code, body = fake.json("GET", "/api/v1/namespaces/demo/pods/%s/log" % pname)
    check("pods/log of a container that cannot pull -> 400 'is waiting to start'",
          code == 400 and body.get("reason") == "BadRequest" and body.get("message") in (
              'container "m" in pod "%s" is waiting to start: image can\'t be pulled' % pname,
              'container "m" in pod "%s" is waiting to start: trying and failing to pull image'
              % pname), body)

    fake.json("POST", base, job_body("ttl", "exit 0", ttlSecondsAfterFinished=2))
    gone = wait_for(lambda: fake.json("GET", base + "/ttl")[0] == 404 and not pods("ttl"), 15)
    check("ttlSecondsAfterFinished: the finished Job and its pods are deleted", gone,
          job("ttl"))


def main():
    if not os.path.exists(KUBECTL):
        print("kubectl not found at %s (run .ci/setup or set $KUBECTL)" % KUBECTL)
        print("0 passed, 1 failed")
        return 1
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="fake-k8s-check-")
    fake = Fake(tmp, "main")
    kc = Kubectl(fake.kubeconfig, tmp)
    try:
        for fn, args in ((deployment_checks, (kc, fake, tmp)), (lease_checks, (kc, fake, tmp)),
                         (raw_checks, (fake,)), (pod_behaviour_checks, (kc, fake, tmp)),
                         (rollback_stale_condition_checks, (kc, fake, tmp)),
                         (daemonset_template_generation_check, (fake,)),
                         (job_checks, (fake,)),
                         (watch_expiry_check, (tmp,))):
            try:
                fn(*args)
            except Exception as e:  # one broken group must not hide the others
                import traceback
                check("%s completed" % fn.__name__, False, traceback.format_exc() or e)
    finally:
        rc = fake.stop()
        with open(os.path.join(tmp, "main.stderr.log")) as f:
            log = f.read()
        check("fake logged no internal errors or controller crashes",
              "internal error" not in log and "crashed" not in log and "Traceback" not in log,
              log[-3000:])
        check("main fake exits cleanly on SIGTERM", rc == 0, rc)
        if RESULTS["failed"] == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in %s" % tmp)
    print("total %.1fs" % (time.time() - t0))
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]))
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
