#!/usr/bin/env python3
"""Fake Kubernetes API server (plus controllers and a simulated kubelet) for deployer's tests.

Standard library only: run it with a bare ``python3``.

    python3 tests/fakes/fake_k8s.py --port 0 [--host 127.0.0.1] [--time-scale 1.0]
                                     [--kubeconfig PATH] [--watch-history 10000]
                                     [--stale-status-hold SECONDS]

It prints exactly one line ``LISTENING <port>`` on stdout once it accepts connections; logs go to
stderr.  SIGTERM/SIGINT stop it cleanly.  Plain HTTP, any (or no) bearer token is accepted.

The wire behaviour is copied from the recordings of a real kube-apiserver v1.28.7 +
kube-controller-manager in shared/k8s-recordings (error bodies, SSA conflicts, watch streams,
bookmarks, expired resource versions, Deployment/ReplicaSet/EndpointSlice status shapes).  The
controllers follow the logic of the real Deployment / ReplicaSet / EndpointSlice / garbage
collector controllers, simplified where README.md says so.  Pod behaviour follows the test bed's
"Behaviour contract for workloads": a marker in a container image (crashloop, imagepull, notready,
slowstart, oomkill) decides what the simulated kubelet reports.

Layout of this file:
  utilities (time, names, YAML) -> API errors -> resource registry -> selectors
  -> field sets / server-side apply -> patches -> defaulting & validation -> store (RV, history,
  managedFields, CRUD) -> events -> controllers & kubelet -> tables -> HTTP layer -> main.
"""

import argparse
import base64
import copy
import datetime as _dt
import hashlib
import http.server
import json
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import deque

# ----------------------------------------------------------------------------------------------
# Utilities
# ----------------------------------------------------------------------------------------------

SERVER_VERSION = {
    "major": "1",
    "minor": "28",
    "gitVersion": "v1.28.7",
    "gitCommit": "9258ab62ed50ee9f1715cbb078b1e760e823bfcb",
    "gitTreeState": "archive",
    "buildDate": "2026-11-23T04:55:55Z",
    "goVersion": "go1.23.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}

NODE_NAME = "fake-node-1"
HOST_IP = "127.0.0.1"
NODE_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
NODE_LABELS = {
    "kubernetes.io/hostname": NODE_NAME,
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "beta.kubernetes.io/os": "linux",
    "beta.kubernetes.io/arch": "amd64",
}

# generateName suffix alphabet of k8s.io/apimachinery/pkg/util/rand (no vowels, no 0/1/3).
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"

LOG_LOCK = threading.Lock()


def log(msg):
    """Log a line to stderr (stdout is reserved for the LISTENING line)."""
    with LOG_LOCK:
        sys.stderr.write("[fake-k8s %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
        sys.stderr.flush()


def fmt_time(ts=None):
    """RFC 3339 with second precision, as metav1.Time serialises."""
    if ts is None:
        ts = time.time()
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s):
    """Parse an RFC 3339 timestamp to epoch seconds (None if absent/garbage)."""
    if not s or not isinstance(s, str):
        return None
    try:
        s2 = s.replace("Z", "+00:00")
        return _dt.datetime.fromisoformat(s2).timestamp()
    except ValueError:
        return None


MICROTIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")


def rand_suffix(n=5):
    return "".join(random.choice(ALPHANUMS) for _ in range(n))


def new_uid():
    return str(uuid.uuid4())


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def canon(obj):
    """Canonical JSON used for equality checks and hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def deep_get(obj, *path, default=None):
    cur = obj
    for p in path:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            return default
    return cur


def fnv32a(data):
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s):
    """k8s.io/apimachinery/pkg/util/rand.SafeEncodeString."""
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in s)


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration (what kubectl prints as AGE)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return "%dm" % minutes if sec == 0 else "%dm%ds" % (minutes, sec)
    if minutes < 180:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return "%dh" % hours if m == 0 else "%dh%dm" % (hours, m)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        h = hours % 24
        return "%dd" % (hours // 24) if h == 0 else "%dd%dh" % (hours // 24, h)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        return "%dy%dd" % (hours // (24 * 365), (hours // 24) % 365)
    return "%dy" % (hours // (24 * 365))


def parse_quantity(q):
    """Parse a resource quantity ("500m", "2", "1Gi") into a float (cores / bytes)."""
    if q is None:
        return 0.0
    if isinstance(q, (int, float)):
        return float(q)
    q = str(q).strip()
    m = re.match(r"^([+-]?[0-9.]+)([a-zA-Z]*)$", q)
    if not m:
        return 0.0
    num = float(m.group(1))
    suf = m.group(2)
    mult = {
        "": 1, "m": 1e-3, "u": 1e-6, "n": 1e-9, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
        "E": 1e18, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5,
        "Ei": 1024 ** 6,
    }.get(suf, 1)
    return num * mult


# ---- minimal YAML (block style subset) ------------------------------------------------------
# kubectl and kube-rs send apply bodies as JSON (JSON is YAML), but hand-written tests (curl) may
# send block YAML like the recordings do.  This parser covers the Kubernetes-manifest subset:
# nested mappings, sequences (incl. "- key: v" items), plain/quoted scalars, flow [] / {} on one
# line, comments, "---" (first document only) and | / > block scalars.


class YamlError(ValueError):
    pass


def _yaml_scalar(tok):
    t = tok.strip()
    if t == "" or t == "~" or t == "null" or t == "Null" or t == "NULL":
        return None
    if t.startswith('"'):
        try:
            return json.loads(t)
        except ValueError:
            raise YamlError("bad double-quoted scalar: %s" % t)
    if t.startswith("'"):
        if not t.endswith("'") or len(t) < 2:
            raise YamlError("bad single-quoted scalar: %s" % t)
        return t[1:-1].replace("''", "'")
    if t.startswith("[") or t.startswith("{"):
        return _yaml_flow(t)
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if re.match(r"^[-+]?(0|[1-9][0-9]*)$", t):
        return int(t)
    if re.match(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$", t) or re.match(
            r"^[-+]?[0-9]+[eE][-+]?[0-9]+$", t):
        return float(t)
    return t


def _yaml_flow(t):
    """Flow collections: try JSON first, then a tolerant split for unquoted words."""
    try:
        return json.loads(t)
    except ValueError:
        pass
    t = t.strip()
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        if not inner:
            return []
        return [_yaml_scalar(x) for x in _split_flow(inner)]
    if t.startswith("{") and t.endswith("}"):
        inner = t[1:-1].strip()
        out = {}
        if not inner:
            return out
        for part in _split_flow(inner):
            k, _, v = part.partition(":")
            out[_yaml_scalar(k)] = _yaml_scalar(v)
        return out
    raise YamlError("bad flow collection: %s" % t)


def _split_flow(s):
    parts, depth, cur, q = [], 0, "", None
    for ch in s:
        if q:
            cur += ch
            if ch == q:
                q = None
            continue
        if ch in "\"'":
            q = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def _strip_comment(line):
    q = None
    for i, ch in enumerate(line):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _split_key(text):
    """Split 'key: value' respecting quotes; returns (key, rest) or None."""
    q = None
    for i, ch in enumerate(text):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == ":" and (i + 1 == len(text) or text[i + 1] in " \t"):
            return _yaml_scalar(text[:i]), text[i + 1:].strip()
    return None


def yaml_load(text):
    lines = []
    raw_lines = text.splitlines()
    started = False
    for raw in raw_lines:
        if raw.strip() == "---":
            if started:
                break
            continue
        if raw.strip().startswith("%"):
            continue
        started = True
        lines.append(raw)
    pos = [0]

    def cur():
        while pos[0] < len(lines):
            s = _strip_comment(lines[pos[0]])
            if s.strip():
                return s
            pos[0] += 1
        return None

    def indent_of(s):
        return len(s) - len(s.lstrip(" "))

    def block_scalar(style, ind):
        out = []
        while pos[0] < len(lines):
            raw = lines[pos[0]]
            if raw.strip() and indent_of(raw) <= ind:
                break
            out.append(raw)
            pos[0] += 1
        body_ind = min([indent_of(x) for x in out if x.strip()] or [0])
        texts = [x[body_ind:] if x.strip() else "" for x in out]
        keep = style.endswith("+")
        strip = style.endswith("-")
        if style.startswith("|"):
            s = "\n".join(texts)
        else:
            s = " ".join(t for t in texts)
        s = s.rstrip("\n")
        if not strip:
            s += "\n"
        if keep:
            pass
        return s

    def parse_value_after(rest, ind):
        if rest == "":
            nxt = cur()
            if nxt is None:
                return None
            ni = indent_of(nxt)
            if ni > ind or (ni == ind and nxt.lstrip().startswith("- ")) or (
                    ni == ind and nxt.strip() == "-"):
                return parse_node(ni)
            return None
        if rest[0] in "|>":
            return block_scalar(rest, ind)
        return _yaml_scalar(rest)

    def parse_node(ind):
        s = cur()
        if s is None:
            return None
        body = s.strip()
        if body.startswith("- ") or body == "-":
            return parse_seq(indent_of(s))
        return parse_map(indent_of(s))

    def parse_seq(ind):
        out = []
        while True:
            s = cur()
            if s is None or indent_of(s) != ind:
                break
            body = s.strip()
            if not (body.startswith("- ") or body == "-"):
                break
            item = body[1:].strip()
            pos[0] += 1
            if item == "":
                out.append(parse_value_after("", ind))
                continue
            kv = _split_key(item) if not item.startswith(("\"", "'", "[", "{")) else None
            if kv is not None:
                # "- key: value" starts a mapping whose other keys are indented further.
                after = body[1:]
                child_ind = ind + 1 + (len(after) - len(after.lstrip(" ")))
                lines[pos[0] - 1] = " " * child_ind + item
                pos[0] -= 1
                out.append(parse_map(child_ind))
            else:
                out.append(_yaml_scalar(item) if item[0] not in "|>" else block_scalar(item, ind))
        return out

    def parse_map(ind):
        out = {}
        while True:
            s = cur()
            if s is None or indent_of(s) != ind:
                break
            body = s.strip()
            if body.startswith("- ") or body == "-":
                break
            kv = _split_key(body)
            if kv is None:
                raise YamlError("expected 'key: value' at line %d: %r" % (pos[0] + 1, body))
            k, rest = kv
            pos[0] += 1
            out[k if isinstance(k, str) else str(k)] = parse_value_after(rest, ind)
        return out

    first = cur()
    if first is None:
        return None
    if indent_of(first) == 0 and not (":" in first or first.strip().startswith("-")):
        return _yaml_scalar(first)
    result = parse_node(indent_of(first))
    if cur() is not None:
        raise YamlError("unexpected content at line %d" % (pos[0] + 1))
    return result


def yaml_dump(obj, indent=0):
    """Emit block YAML with sorted keys, like sigs.k8s.io/yaml does for API responses."""
    pad = " " * indent

    def scalar(v):
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, (int, float)):
            return json.dumps(v)
        s = str(v)
        if s == "" or re.search(r"[:#\[\]{},&*!|>'\"%@`\n]|^[-?\s]|\s$", s) or _yaml_scalar(s) != s:
            return json.dumps(s)
        return s

    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k in sorted(obj):
            v = obj[k]
            if isinstance(v, dict) and v:
                out.append("%s%s:\n%s" % (pad, scalar(k), yaml_dump(v, indent + 2)))
            elif isinstance(v, list) and v:
                out.append("%s%s:\n%s" % (pad, scalar(k), yaml_dump(v, indent)))
            elif isinstance(v, dict):
                out.append("%s%s: {}\n" % (pad, scalar(k)))
            elif isinstance(v, list):
                out.append("%s%s: []\n" % (pad, scalar(k)))
            else:
                out.append("%s%s: %s\n" % (pad, scalar(k), scalar(v)))
        return "".join(out)
    if isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                sub = yaml_dump(v, indent + 2)
                out.append("%s- %s" % (pad, sub[indent + 2:]))
            elif isinstance(v, dict):
                out.append("%s- {}\n" % pad)
            elif isinstance(v, list):
                out.append("%s- []\n" % pad)
            else:
                out.append("%s- %s\n" % (pad, scalar(v)))
        return "".join(out)
    return pad + scalar(obj) + "\n"


# ----------------------------------------------------------------------------------------------
# API errors (Status bodies exactly as the recordings show)
# ----------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error that becomes a metav1.Status response."""

    def __init__(self, code, reason, message, details=None, extra_headers=None, raw=None,
                 content_type="application/json"):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.extra_headers = extra_headers or {}
        self.raw = raw
        self.content_type = content_type

    def body(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message}
        if self.reason:
            st["reason"] = self.reason
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def gr_string(rt):
    """'deployments.apps' / 'pods' as used in error messages."""
    return rt.resource + ("." + rt.group if rt.group else "")


def gr_details(rt, name=None, kind=None):
    d = {}
    if name is not None:
        d["name"] = name
    if rt.group:
        d["group"] = rt.group
    d["kind"] = kind or rt.resource
    return d


def err_not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (gr_string(rt), name),
                    gr_details(rt, name))


def err_ns_not_found(ns):
    return ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                    {"name": ns, "kind": "namespaces"})


def err_resource_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def err_already_exists(rt, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (gr_string(rt), name),
                    gr_details(rt, name))


def err_conflict(rt, name):
    return ApiError(
        409, "Conflict",
        'Operation cannot be fulfilled on %s "%s": the object has been modified; please apply '
        "your changes to the latest version and try again" % (gr_string(rt), name),
        gr_details(rt, name))


def err_bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def err_invalid(rt, name, causes):
    """422 with details.kind = Kind (not the plural), as 08 shows."""
    group_kind = rt.kind + ("." + rt.group if rt.group else "")
    # field.ErrorList.ToAggregate drops repeated messages (two job-name labels, one text);
    # the causes keep every error.
    parts = []
    for c in causes:
        part = "%s: %s" % (c["field"], c["message"])
        if part not in parts:
            parts.append(part)
    if len(parts) == 1:
        msg = '%s "%s" is invalid: %s' % (group_kind, name, parts[0])
    else:
        msg = '%s "%s" is invalid: [%s]' % (group_kind, name, ", ".join(parts))
    return ApiError(422, "Invalid", msg, dict(gr_details(rt, name, rt.kind), causes=causes))


def cause(reason, message, field):
    return {"reason": reason, "message": message, "field": field}


def err_internal(msg):
    return ApiError(500, "InternalError", "Internal error occurred: %s" % msg,
                    {"causes": [{"message": msg}]})


def err_method_not_allowed():
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource", {})


# ----------------------------------------------------------------------------------------------
# Resource registry
# ----------------------------------------------------------------------------------------------

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class ResType:
    """One served resource (group/version/plural) and what the API knows about it."""

    def __init__(self, group, version, resource, kind, namespaced=True, short=None,
                 categories=None, subresources=(), verbs=None, storage=None, singular=None,
                 top_fields=("spec", "status"), has_generation=False, status_sub=False,
                 list_kind=None):
        self.group = group
        self.version = version
        self.resource = resource
        self.kind = kind
        self.namespaced = namespaced
        self.short = short or []
        self.categories = categories or []
        self.subresources = list(subresources)
        self.verbs = verbs or list(ALL_VERBS)
        # Objects are stored once per storage key; events.k8s.io/v1 shares storage with v1 events.
        self.storage = storage or (group, resource)
        self.singular = singular or kind.lower()
        self.top_fields = set(top_fields) | {"apiVersion", "kind", "metadata"}
        self.has_generation = has_generation
        self.status_sub = status_sub
        self.list_kind = list_kind or (kind + "List")

    @property
    def api_version(self):
        return self.group + "/" + self.version if self.group else self.version

    def __repr__(self):
        return "<%s %s>" % (self.api_version, self.resource)


EVENT_V1_FIELDS = ("involvedObject", "reason", "message", "source", "firstTimestamp",
                   "lastTimestamp", "count", "type", "eventTime", "series", "action", "related",
                   "reportingComponent", "reportingInstance")
EVENT_EV1_FIELDS = ("eventTime", "series", "reportingController", "reportingInstance", "action",
                    "reason", "regarding", "related", "note", "type", "deprecatedSource",
                    "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount")

RESOURCES = [
    # core/v1
    ResType("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"],
            subresources=[("status", "Namespace", ["get", "patch", "update"]),
                          ("finalize", "Namespace", ["update"])],
            verbs=["create", "delete", "get", "list", "patch", "update", "watch"], status_sub=True),
    ResType("", "v1", "nodes", "Node", namespaced=False, short=["no"],
            subresources=[("status", "Node", ["get", "patch", "update"])], status_sub=True),
    ResType("", "v1", "pods", "Pod", short=["po"], categories=["all"],
            subresources=[("eviction", "Eviction", ["create"], "policy", "v1"),
                          ("log", "Pod", ["get"]), ("status", "Pod", ["get", "patch", "update"])],
            status_sub=True),
    ResType("", "v1", "services", "Service", short=["svc"], categories=["all"],
            subresources=[("status", "Service", ["get", "patch", "update"])], status_sub=True),
    ResType("", "v1", "endpoints", "Endpoints", short=["ep"], singular="endpoints",
            top_fields=("subsets",), list_kind="EndpointsList"),
    ResType("", "v1", "configmaps", "ConfigMap", short=["cm"],
            top_fields=("data", "binaryData", "immutable")),
    ResType("", "v1", "secrets", "Secret", top_fields=("data", "stringData", "type", "immutable")),
    ResType("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"],
            subresources=[("token", "TokenRequest", ["create"], "authentication.k8s.io", "v1")],
            top_fields=("secrets", "imagePullSecrets", "automountServiceAccountToken")),
    ResType("", "v1", "events", "Event", short=["ev"], top_fields=EVENT_V1_FIELDS),
    # apps/v1
    ResType("apps", "v1", "deployments", "Deployment", short=["deploy"], categories=["all"],
            subresources=[("scale", "Scale", ["get", "patch", "update"], "autoscaling", "v1"),
                          ("status", "Deployment", ["get", "patch", "update"])],
            has_generation=True, status_sub=True),
    ResType("apps", "v1", "replicasets", "ReplicaSet", short=["rs"], categories=["all"],
            subresources=[("scale", "Scale", ["get", "patch", "update"], "autoscaling", "v1"),
                          ("status", "ReplicaSet", ["get", "patch", "update"])],
            has_generation=True, status_sub=True),
    ResType("apps", "v1", "statefulsets", "StatefulSet", short=["sts"], categories=["all"],
            subresources=[("scale", "Scale", ["get", "patch", "update"], "autoscaling", "v1"),
                          ("status", "StatefulSet", ["get", "patch", "update"])],
            has_generation=True, status_sub=True),
    ResType("apps", "v1", "daemonsets", "DaemonSet", short=["ds"], categories=["all"],
            subresources=[("status", "DaemonSet", ["get", "patch", "update"])],
            has_generation=True, status_sub=True),
    ResType("apps", "v1", "controllerrevisions", "ControllerRevision",
            top_fields=("data", "revision")),
    # batch/v1
    ResType("batch", "v1", "jobs", "Job", categories=["all"],
            subresources=[("status", "Job", ["get", "patch", "update"])], has_generation=True,
            status_sub=True),
    ResType("batch", "v1", "cronjobs", "CronJob", short=["cj"], categories=["all"],
            subresources=[("status", "CronJob", ["get", "patch", "update"])], has_generation=True,
            status_sub=True),
    # autoscaling/v2
    ResType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
            short=["hpa"], categories=["all"],
            subresources=[("status", "HorizontalPodAutoscaler", ["get", "patch", "update"])],
            status_sub=True),
    # policy/v1
    ResType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"],
            subresources=[("status", "PodDisruptionBudget", ["get", "patch", "update"])],
            has_generation=True, status_sub=True),
    # coordination.k8s.io/v1
    ResType("coordination.k8s.io", "v1", "leases", "Lease", top_fields=("spec",)),
    # discovery.k8s.io/v1
    ResType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice",
            top_fields=("addressType", "endpoints", "ports"), has_generation=True),
    # events.k8s.io/v1 (same storage as core events, converted on the way in and out)
    ResType("events.k8s.io", "v1", "events", "Event", short=["ev"], storage=("", "events"),
            top_fields=EVENT_EV1_FIELDS),
    # networking.k8s.io/v1
    ResType("networking.k8s.io", "v1", "ingresses", "Ingress", short=["ing"],
            subresources=[("status", "Ingress", ["get", "patch", "update"])], has_generation=True,
            status_sub=True),
    ResType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False,
            top_fields=("spec",)),
    ResType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=["netpol"],
            has_generation=True),
    # rbac.authorization.k8s.io/v1
    ResType("rbac.authorization.k8s.io", "v1", "roles", "Role", top_fields=("rules",)),
    ResType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding",
            top_fields=("subjects", "roleRef")),
    ResType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False,
            top_fields=("rules", "aggregationRule")),
    ResType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
            namespaced=False, top_fields=("subjects", "roleRef")),
    # authorization / authentication (create-only review objects, never stored)
    ResType("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
            namespaced=False, verbs=["create"]),
    ResType("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
            namespaced=False, verbs=["create"]),
]

# Group order as the real /apis lists them (only the groups we serve).
GROUP_ORDER = ["apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
               "autoscaling", "batch", "networking.k8s.io", "policy",
               "rbac.authorization.k8s.io", "coordination.k8s.io", "discovery.k8s.io"]

RES_BY_GVR = {(r.group, r.version, r.resource): r for r in RESOURCES}
RES_BY_GVK = {(r.group, r.version, r.kind): r for r in RESOURCES}
GROUP_VERSIONS = {}
for _r in RESOURCES:
    GROUP_VERSIONS.setdefault(_r.group, [])
    if _r.version not in GROUP_VERSIONS[_r.group]:
        GROUP_VERSIONS[_r.group].append(_r.version)


def rt_for(group, resource):
    for r in RESOURCES:
        if r.group == group and r.resource == resource:
            return r
    raise KeyError((group, resource))


RT = {name: rt_for(g, name) for g, name in [
    ("", "namespaces"), ("", "nodes"), ("", "pods"), ("", "services"), ("", "endpoints"),
    ("", "configmaps"), ("", "secrets"), ("", "serviceaccounts"), ("", "events"),
    ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
    ("apps", "daemonsets"), ("apps", "controllerrevisions"), ("batch", "jobs"),
    ("discovery.k8s.io", "endpointslices"), ("coordination.k8s.io", "leases"),
]}

# ----------------------------------------------------------------------------------------------
# Label and field selectors
# ----------------------------------------------------------------------------------------------


def _split_selector(s):
    parts, depth, curp = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(curp)
            curp = ""
        else:
            curp += ch
    if curp.strip():
        parts.append(curp)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(s):
    """Returns a list of (key, op, values) requirements; raises ApiError 400 on bad syntax."""
    reqs = []
    if not s:
        return reqs
    for part in _split_selector(s):
        m = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", part)
        if m:
            vals = [v.strip() for v in m.group(3).split(",") if v.strip()]
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(\S*)$", part)
        if m:
            op = {"==": "=", "=": "=", "!=": "!=", "<": "lt", ">": "gt"}[m.group(2)]
            reqs.append((m.group(1), op, [m.group(3)]))
            continue
        m = re.match(r"^!\s*(\S+)$", part)
        if m:
            reqs.append((m.group(1), "!exists", []))
            continue
        if re.match(r"^[A-Za-z0-9._/-]+$", part):
            reqs.append((part, "exists", []))
            continue
        raise err_bad_request("unable to parse requirement: %s" % part)
    return reqs


def label_match(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and not (has and v == vals[0]):
            return False
        if op == "!=" and has and v == vals[0]:
            return False
        if op == "in" and not (has and v in vals):
            return False
        if op == "notin" and has and v in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
        if op in ("lt", "gt"):
            try:
                if not has:
                    return False
                a, b = float(v), float(vals[0])
                if (op == "lt" and not a < b) or (op == "gt" and not a > b):
                    return False
            except ValueError:
                return False
    return True


def selector_from_label_selector(sel):
    """metav1.LabelSelector -> requirement list (matchLabels + matchExpressions)."""
    if sel is None:
        return None
    reqs = [(k, "=", [v]) for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists",
              "DoesNotExist": "!exists"}.get(e.get("operator"), "in")
        reqs.append((e.get("key"), op, list(e.get("values") or [])))
    return reqs


def label_selector_string(sel):
    """metav1.FormatLabelSelector, as /scale status.selector and kubectl print it."""
    if not sel:
        return "<none>"
    parts = ["%s=%s" % (k, v) for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op == "In":
            parts.append("%s in (%s)" % (e["key"], ",".join(sorted(e.get("values") or []))))
        elif op == "NotIn":
            parts.append("%s notin (%s)" % (e["key"], ",".join(sorted(e.get("values") or []))))
        elif op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
    return ",".join(parts) if parts else "<none>"


# Supported field selector labels per storage resource (besides metadata.name/namespace).
FIELD_LABELS = {
    ("", "pods"): {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                   "status.podIPs", "status.nominatedNodeName"},
    ("", "events"): {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion",
                     "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                     "reportingComponent", "source", "type"},
    ("events.k8s.io", "events"): {"regarding.kind", "regarding.namespace", "regarding.name",
                                  "regarding.uid", "regarding.apiVersion",
                                  "regarding.resourceVersion", "regarding.fieldPath", "reason",
                                  "reportingController", "type"},
    ("", "secrets"): {"type"},
    ("", "namespaces"): {"status.phase"},
    ("", "nodes"): {"spec.unschedulable"},
    ("apps", "replicasets"): {"status.replicas"},
    ("batch", "jobs"): {"status.successful"},
}


def parse_field_selector(s, rt):
    reqs = []
    if not s:
        return reqs
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get((rt.group, rt.resource),
                                                                         set())
    for part in _split_selector(s):
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise err_bad_request("invalid selector: '%s'; can't understand '%s'" % (s, part))
        key, op, val = m.group(1).strip(), m.group(2), m.group(3).strip()
        if key not in allowed:
            raise err_bad_request("field label not supported: %s" % key)
        reqs.append((key, "!=" if op == "!=" else "=", val))
    return reqs


def field_value(obj, key):
    if key == "source":
        return deep_get(obj, "source", "component", default="")
    cur = obj
    for p in key.split("."):
        if isinstance(cur, dict):
            cur = cur.get(p)
        else:
            cur = None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_match(reqs, obj):
    for key, op, val in reqs:
        v = field_value(obj, key)
        if op == "=" and v != val:
            return False
        if op == "!=" and v == val:
            return False
    return True


# ----------------------------------------------------------------------------------------------
# Field sets and server-side apply
#
# A field set is a Python set of paths; a path is a tuple of fieldsV1 path elements:
#   "f:<field>"              a struct/map field
#   'k:{"name":"web"}'       an item of an associative list (keys as compact sorted JSON)
#   'v:"foregroundDeletion"' a value of a set-type list
# This is exactly the fieldsV1 encoding, so converting to / from managedFields is mechanical.
# The schema knowledge below (which lists are associative and by which keys, which maps are
# atomic) covers the Kubernetes built-in types deployer writes; everything else is treated as
# atomic, which only makes ownership coarser, never wrong in what gets stored.
# ----------------------------------------------------------------------------------------------

ASSOC_KEYS = {
    "containers": ["name"], "initContainers": ["name"], "ephemeralContainers": ["name"],
    "env": ["name"], "volumes": ["name"], "volumeMounts": ["mountPath"],
    "volumeDevices": ["devicePath"], "imagePullSecrets": ["name"], "hostAliases": ["ip"],
    "conditions": ["type"], "ownerReferences": ["uid"], "resourceClaims": ["name"],
    "topologySpreadConstraints": ["topologyKey", "whenUnsatisfiable"], "podIPs": ["ip"],
    "hostIPs": ["ip"], "containerStatuses": ["name"], "initContainerStatuses": ["name"],
}
SET_LISTS = {"finalizers"}
# Maps that are replaced as a whole (x-kubernetes-map-type: atomic / atomic structs).
ATOMIC_FIELDS = {"selector", "labelSelector", "namespaceSelector", "podSelector", "roleRef",
                 "targetRef", "matchExpressions", "nodeSelectorTerms", "tolerations", "args",
                 "command", "rules", "subjects", "hosts", "tls", "addresses", "subsets",
                 "endpoints", "metrics", "behavior"}
# Maps (not structs): a newly created one is itself a member of an Update's field set (".").
MAP_FIELDS = {"labels", "annotations", "data", "binaryData", "stringData", "nodeSelector",
              "matchLabels", "limits", "requests", "selector"}
KEY_DEFAULTS = {"protocol": "TCP"}
META_SYSTEM = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
               "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"}


def list_keys(names, kind=None):
    """For a list at field path `names` return ("assoc", keys) / ("set", None) / ("atomic", None)."""
    if not names:
        return ("atomic", None)
    last = names[-1]
    if last in SET_LISTS:
        return ("set", None)
    if last == "ports":
        if any(n in ("containers", "initContainers", "ephemeralContainers") for n in names):
            return ("assoc", ["containerPort", "protocol"])
        if kind == "Service" and tuple(names) == ("spec", "ports"):
            return ("assoc", ["port", "protocol"])
        return ("atomic", None)
    if last in ASSOC_KEYS and last not in ATOMIC_FIELDS:
        return ("assoc", ASSOC_KEYS[last])
    return ("atomic", None)


def is_atomic(names):
    return bool(names) and names[-1] in ATOMIC_FIELDS and not (
        len(names) >= 2 and names[-2] == "metadata")


def item_key(item, keys):
    d = {}
    for k in keys:
        if k in item and item[k] is not None:
            d[k] = item[k]
        elif k in KEY_DEFAULTS:
            d[k] = KEY_DEFAULTS[k]
    return "k:" + json.dumps(d, sort_keys=True, separators=(",", ":"))


def value_key(v):
    return "v:" + json.dumps(v, sort_keys=True, separators=(",", ":"))


def path_string(path):
    """fieldpath.Path.String(): .spec.template.spec.containers[name="web"].image"""
    out = ""
    for pe in path:
        if pe.startswith("f:"):
            out += "." + pe[2:]
        elif pe.startswith("k:"):
            d = json.loads(pe[2:])
            out += "[" + ",".join("%s=%s" % (k, json.dumps(v)) for k, v in sorted(d.items())) + "]"
        elif pe.startswith("v:"):
            out += "[=" + pe[2:] + "]"
        else:
            out += "[" + pe[2:] + "]"
    return out


def strip_for_fields(obj):
    """The part of an object that field ownership is tracked on."""
    o = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if isinstance(o.get("metadata"), dict):
        o["metadata"] = {k: v for k, v in o["metadata"].items() if k not in META_SYSTEM}
        if not o["metadata"]:
            del o["metadata"]
    return o


def fieldset_apply(obj, kind):
    """Field set of an applied configuration (leaves, list items, empty maps)."""
    out = set()

    def walk_dict(d, path, names):
        for k, v in d.items():
            if v is None:
                continue
            walk(v, path + ("f:" + k,), names + (k,))

    def walk(v, path, names):
        if isinstance(v, dict):
            if not v or is_atomic(names):
                out.add(path)
                return
            walk_dict(v, path, names)
        elif isinstance(v, list):
            lt, keys = list_keys(names, kind)
            if lt == "atomic" or not v or not all(isinstance(i, dict) for i in v) and lt == "assoc":
                out.add(path)
                return
            if lt == "set":
                for item in v:
                    out.add(path + (value_key(item),))
                return
            for item in v:
                ip = path + (item_key(item, keys),)
                out.add(ip)
                walk_dict(item, ip, names)
        else:
            out.add(path)

    walk_dict(strip_for_fields(obj), (), ())
    return out


def fieldset_diff(old, new, kind):
    """(changed_or_added, removed) paths between two objects: what an Update operation owns."""
    changed, removed = set(), set()

    def added(v, path, names, member=True):
        if member:
            changed.add(path)
        if isinstance(v, dict) and v and not is_atomic(names):
            for k, sv in v.items():
                if sv is None:
                    continue
                sub = names + (k,)
                is_member = not isinstance(sv, dict) or not sv or k in MAP_FIELDS or is_atomic(sub)
                added(sv, path + ("f:" + k,), sub, is_member)
        elif isinstance(v, list) and v:
            lt, keys = list_keys(names, kind)
            if lt == "assoc" and all(isinstance(i, dict) for i in v):
                for item in v:
                    added(item, path + (item_key(item, keys),), names, True)
            elif lt == "set":
                for item in v:
                    changed.add(path + (value_key(item),))

    def walk(o, n, path, names):
        if o == n:
            return
        if isinstance(o, dict) and isinstance(n, dict) and not is_atomic(names):
            for k, nv in n.items():
                if nv is None:
                    continue
                sub = names + (k,)
                if k not in o or o[k] is None:
                    is_member = (not isinstance(nv, dict) or not nv or k in MAP_FIELDS
                                 or is_atomic(sub))
                    added(nv, path + ("f:" + k,), sub, is_member)
                else:
                    walk(o[k], nv, path + ("f:" + k,), sub)
            for k in o:
                if k not in n or n[k] is None:
                    removed.add(path + ("f:" + k,))
            return
        if isinstance(o, list) and isinstance(n, list):
            lt, keys = list_keys(names, kind)
            if lt == "assoc" and all(isinstance(i, dict) for i in o + n):
                oi = {item_key(i, keys): i for i in o}
                ni = {item_key(i, keys): i for i in n}
                for k, v in ni.items():
                    if k in oi:
                        walk(oi[k], v, path + (k,), names)
                    else:
                        added(v, path + (k,), names, True)
                for k in oi:
                    if k not in ni:
                        removed.add(path + (k,))
                return
            if lt == "set":
                ov = {value_key(i) for i in o}
                nv = {value_key(i) for i in n}
                for k in nv - ov:
                    changed.add(path + (k,))
                for k in ov - nv:
                    removed.add(path + (k,))
                return
        changed.add(path)

    walk(strip_for_fields(old), strip_for_fields(new), (), ())
    return changed, removed


def fv1_to_set(tree):
    out = set()

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if not node and path:
            out.add(path)
        for k, v in node.items():
            if k == ".":
                out.add(path)
            else:
                walk(v, path + (k,))

    walk(tree or {}, ())
    return out


def set_to_fv1(paths):
    root = {}
    members = set(paths)
    for p in sorted(paths):
        node = root
        for pe in p:
            node = node.setdefault(pe, {})
    # A member that also has children carries "." (the node itself is owned).

    def mark(node, path):
        for k in list(node.keys()):
            child = node[k]
            cp = path + (k,)
            if child and cp in members:
                child["."] = {}
            mark(child, cp)

    mark(root, ())

    def srt(node):
        return {k: srt(node[k]) for k in sorted(node)}

    return srt(root)


def get_at(obj, path):
    """(found, value) at a field path."""
    cur = obj
    for pe in path:
        if pe.startswith("f:"):
            if not isinstance(cur, dict) or pe[2:] not in cur:
                return False, None
            cur = cur[pe[2:]]
        elif pe.startswith("k:"):
            if not isinstance(cur, list):
                return False, None
            want = json.loads(pe[2:])
            found = None
            for item in cur:
                if isinstance(item, dict) and all(
                        item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in want.items()):
                    found = item
                    break
            if found is None:
                return False, None
            cur = found
        elif pe.startswith("v:"):
            if not isinstance(cur, list):
                return False, None
            want = json.loads(pe[2:])
            if want not in cur:
                return False, None
            cur = want
        else:
            return False, None
    return True, cur


def remove_at(obj, path):
    """Remove the node at `path` from obj (in place) if present."""
    if not path:
        return
    found, parent = get_at(obj, path[:-1])
    if not found:
        return
    pe = path[-1]
    if pe.startswith("f:") and isinstance(parent, dict):
        parent.pop(pe[2:], None)
    elif pe.startswith("k:") and isinstance(parent, list):
        want = json.loads(pe[2:])
        parent[:] = [i for i in parent if not (isinstance(i, dict) and all(
            i.get(k, KEY_DEFAULTS.get(k)) == v for k, v in want.items()))]
    elif pe.startswith("v:") and isinstance(parent, list):
        want = json.loads(pe[2:])
        parent[:] = [i for i in parent if i != want]


def apply_merge(live, applied, names, kind):
    """Merge an applied configuration into the live object (structured-merge-diff semantics)."""
    if isinstance(applied, dict) and not is_atomic(names):
        result = copy.deepcopy(live) if isinstance(live, dict) else {}
        for k, v in applied.items():
            if v is None:
                result.pop(k, None)
                continue
            result[k] = apply_merge(result.get(k), v, names + (k,), kind)
        return result
    if isinstance(applied, list):
        lt, keys = list_keys(names, kind)
        if lt == "assoc" and isinstance(live, list) and all(isinstance(i, dict) for i in applied):
            result = copy.deepcopy(live)
            index = {item_key(i, keys): n for n, i in enumerate(result) if isinstance(i, dict)}
            for item in applied:
                k = item_key(item, keys)
                if k in index:
                    result[index[k]] = apply_merge(result[index[k]], item, names, kind)
                else:
                    index[k] = len(result)
                    result.append(copy.deepcopy(item))
            return result
        if lt == "set" and isinstance(live, list):
            result = copy.deepcopy(live)
            for item in applied:
                if item not in result:
                    result.append(copy.deepcopy(item))
            return result
    return copy.deepcopy(applied)


class ManagedFields:
    """Parsed metadata.managedFields: a list of entries, each with a field set."""

    def __init__(self, entries):
        self.entries = []
        for e in entries or []:
            e = dict(e)
            e["_set"] = fv1_to_set(e.get("fieldsV1"))
            self.entries.append(e)

    def find(self, manager, operation, subresource, api_version=None):
        for e in self.entries:
            if (e.get("manager") == manager and e.get("operation") == operation
                    and e.get("subresource", "") == (subresource or "")
                    and (operation == "Apply" or api_version is None
                         or e.get("apiVersion") == api_version)):
                return e
        return None

    def ensure(self, manager, operation, subresource, api_version):
        e = self.find(manager, operation, subresource, api_version)
        if e is None:
            e = {"manager": manager, "operation": operation, "apiVersion": api_version,
                 "time": fmt_time(), "fieldsType": "FieldsV1", "_set": set()}
            if subresource:
                e["subresource"] = subresource
            self.entries.append(e)
        return e

    def encode(self):
        out = []
        for e in self.entries:
            if not e["_set"]:
                continue
            enc = {"manager": e["manager"], "operation": e["operation"],
                   "apiVersion": e["apiVersion"], "time": e["time"], "fieldsType": "FieldsV1",
                   "fieldsV1": set_to_fv1(e["_set"])}
            if e.get("subresource"):
                enc["subresource"] = e["subresource"]
            out.append(enc)
        # managedfields.sortEncodedManagedFields: operation, time, manager, apiVersion, subres.
        out.sort(key=lambda e: (e["operation"], parse_time(e["time"]) or 0, e["manager"],
                                e["apiVersion"], e.get("subresource", "")))
        return out

    def record_update(self, old_obj, new_obj, manager, subresource, api_version, kind):
        """Update operation: the manager takes every field it changed (no conflicts)."""
        changed, removed = fieldset_diff(old_obj or {}, new_obj, kind)
        if not changed and not removed:
            return False
        for e in self.entries:
            e["_set"] = {p for p in e["_set"] if p not in changed and not _under(p, removed)}
        e = self.ensure(manager, "Update", subresource, api_version)
        e["_set"] |= changed
        e["time"] = fmt_time()
        return True


def _under(path, prefixes):
    for i in range(1, len(path) + 1):
        if path[:i] in prefixes:
            return True
    return False


def manager_label(e):
    """printManager() of the apiserver's conflict error."""
    s = json.dumps(e["manager"])
    if e.get("subresource"):
        s += " with subresource %s" % json.dumps(e["subresource"])
    if e["operation"] == "Update":
        s += " using %s" % e["apiVersion"]
    return s


def ssa_conflict_error(conflicts):
    causes = [{"reason": "FieldManagerConflict", "message": "conflict with %s" % manager_label(e),
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        msg = "Apply failed with 1 conflict: conflict with %s: %s" % (manager_label(e),
                                                                       path_string(p))
    else:
        by = {}
        for e, p in conflicts:
            by.setdefault(manager_label(e), []).append(path_string(p))
        lines = []
        for m in sorted(by):
            lines.append("conflicts with %s:" % m)
            lines.extend("- %s" % p for p in by[m])
        msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(lines))
    return ApiError(409, "Conflict", msg, {"causes": causes})


def server_side_apply(live, applied, manager, force, kind, api_version, subresource):
    """Returns (merged object, ManagedFields) or raises the 409 conflict error.

    `live` is None when the object does not exist yet (apply creates it).  The caller strips
    parts the subresource does not own before calling, and defaults/validates afterwards.
    """
    mf = ManagedFields(deep_get(live, "metadata", "managedFields") if live else [])
    new_set = fieldset_apply(applied, kind)
    base = copy.deepcopy(live) if live else {}
    merged = apply_merge(base, {k: v for k, v in applied.items()}, (), kind)
    me = mf.find(manager, "Apply", subresource)
    conflicts = []
    if live:
        for e in mf.entries:
            if e is me:
                continue
            for p in sorted(new_set & e["_set"]):
                if p and (p[-1].startswith("k:") or p[-1].startswith("v:")):
                    continue  # owning the same list item is shared, values are compared below
                f1, v1 = get_at(live, p)
                f2, v2 = get_at(merged, p)
                if f1 and (not f2 or canon(v1) != canon(v2)):
                    conflicts.append((e, p))
    if conflicts and not force:
        raise ssa_conflict_error(conflicts)
    for e, p in conflicts:
        e["_set"].discard(p)
    # Fields this manager applied before but no longer applies are removed when nobody else
    # owns them (ConfigMap key removal in recording 02).
    old_set = me["_set"] if me else set()
    others = set()
    for e in mf.entries:
        if e is not me:
            others |= e["_set"]
    for p in sorted(old_set - new_set, key=len, reverse=True):
        if p in others or any(o[:len(p)] == p for o in others):
            continue
        if len(p) >= 2 and p[-2].startswith("k:") and p[-1].startswith("f:") and \
                p[-1][2:] in json.loads(p[-2][2:]):
            continue  # never strip the key field of a list item that stays
        remove_at(merged, p)
    me = mf.ensure(manager, "Apply", subresource, api_version)
    me["_prev"] = set(me["_set"])
    me["_set"] = new_set
    me["apiVersion"] = api_version
    return merged, mf


# ----------------------------------------------------------------------------------------------
# Patches: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902)
# ----------------------------------------------------------------------------------------------


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items()
                if not k.startswith("$") and x is not None}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def strategic_merge(target, patch, names, kind):
    """Strategic merge patch with the merge keys of the built-in types ($patch directives)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
            continue
        sub = names + (k,)
        if isinstance(v, list):
            lt, keys = list_keys(sub, kind)
            cur = result.get(k)
            if lt == "assoc" and all(isinstance(i, dict) for i in v):
                key = keys[0]
                out = copy.deepcopy(cur) if isinstance(cur, list) else []
                for item in v:
                    directive = item.get("$patch")
                    idx = next((n for n, x in enumerate(out)
                                if isinstance(x, dict) and x.get(key) == item.get(key)), None)
                    if directive == "delete":
                        if idx is not None:
                            out.pop(idx)
                        continue
                    if idx is not None and directive != "replace":
                        out[idx] = strategic_merge(out[idx], item, sub, kind)
                    elif idx is not None:
                        out[idx] = _strip_directives(item)
                    else:
                        out.append(_strip_directives(item))
                result[k] = out
            elif lt == "set":
                out = list(cur) if isinstance(cur, list) else []
                for item in v:
                    if item not in out:
                        out.append(item)
                result[k] = out
            else:
                result[k] = _strip_directives(v)
        elif isinstance(v, dict):
            if v.get("$patch") == "delete":
                result.pop(k, None)
            else:
                result[k] = strategic_merge(result.get(k), v, sub, kind)
        else:
            result[k] = v
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


class PatchError(Exception):
    pass


def _ptr_tokens(ptr):
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise PatchError("bad pointer %r" % ptr)
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr[1:].split("/")]


def _ptr_parent(doc, tokens):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise PatchError("missing path")
    return cur


def _ptr_get(doc, ptr):
    tokens = _ptr_tokens(ptr)
    if not tokens:
        return doc
    parent = _ptr_parent(doc, tokens)
    t = tokens[-1]
    if isinstance(parent, dict) and t in parent:
        return parent[t]
    if isinstance(parent, list) and t.isdigit() and int(t) < len(parent):
        return parent[int(t)]
    raise PatchError("missing path %s" % ptr)


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("patch is not a list")
    for op in ops:
        kind = op.get("op")
        path = op.get("path", "")
        if kind == "test":
            if canon(_ptr_get(doc, path)) != canon(op.get("value")):
                raise PatchError("test failed")
            continue
        if kind in ("move", "copy"):
            val = copy.deepcopy(_ptr_get(doc, op.get("from", "")))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op.get("from", "")}])
            doc = json_patch(doc, [{"op": "add", "path": path, "value": val}])
            continue
        tokens = _ptr_tokens(path)
        if not tokens:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise PatchError("cannot remove root")
        parent = _ptr_parent(doc, tokens)
        t = tokens[-1]
        if kind == "add":
            if isinstance(parent, dict):
                parent[t] = copy.deepcopy(op.get("value"))
            elif isinstance(parent, list):
                if t == "-":
                    parent.append(copy.deepcopy(op.get("value")))
                elif t.isdigit() and int(t) <= len(parent):
                    parent.insert(int(t), copy.deepcopy(op.get("value")))
                else:
                    raise PatchError("bad index")
            else:
                raise PatchError("bad parent")
        elif kind in ("remove", "replace"):
            if isinstance(parent, dict) and t in parent:
                if kind == "remove":
                    del parent[t]
                else:
                    parent[t] = copy.deepcopy(op.get("value"))
            elif isinstance(parent, list) and t.isdigit() and int(t) < len(parent):
                if kind == "remove":
                    parent.pop(int(t))
                else:
                    parent[int(t)] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError("missing path %s" % path)
        else:
            raise PatchError("unknown op %r" % kind)
    return doc


# ----------------------------------------------------------------------------------------------
# Defaulting and validation (the subset of the real API server's that clients observe)
# ----------------------------------------------------------------------------------------------


def image_pull_policy_default(image):
    """Always for :latest or untagged images (without digest), else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return "Always"
    return "IfNotPresent"


def default_probe(p):
    if not isinstance(p, dict):
        return
    p.setdefault("timeoutSeconds", 1)
    p.setdefault("periodSeconds", 10)
    p.setdefault("successThreshold", 1)
    p.setdefault("failureThreshold", 3)
    if isinstance(p.get("httpGet"), dict):
        p["httpGet"].setdefault("scheme", "HTTP")


def default_container(c):
    if not isinstance(c, dict):
        return
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        fr = deep_get(e, "valueFrom", "fieldRef")
        if isinstance(fr, dict):
            fr.setdefault("apiVersion", "v1")
    c.setdefault("resources", {})
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        default_probe(c.get(probe))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if "imagePullPolicy" not in c and isinstance(c.get("image"), str):
        c["imagePullPolicy"] = image_pull_policy_default(c["image"])


def default_pod_spec(spec):
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def default_template(t):
    if not isinstance(t, dict):
        return
    md = t.setdefault("metadata", {})
    if isinstance(md, dict):
        md.setdefault("creationTimestamp", None)
    default_pod_spec(t.setdefault("spec", {}))


def qos_class(spec):
    reqs_any, guaranteed = False, True
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            reqs_any = True
        for r in ("cpu", "memory"):
            if r not in lim or parse_quantity(req.get(r, lim.get(r))) != parse_quantity(lim[r]):
                guaranteed = False
    if not reqs_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_object(rt, obj, old, cluster):
    """Apply the API server's defaulting to a full object (create and update)."""
    kind = rt.kind
    spec = obj.get("spec")
    md = obj.setdefault("metadata", {})
    if kind == "Deployment" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        st = spec.setdefault("strategy", {})
        st.setdefault("type", "RollingUpdate")
        if st["type"] == "RollingUpdate":
            ru = st.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_template(spec.get("template"))
    elif kind == "ReplicaSet" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        default_template(spec.get("template"))
    elif kind == "StatefulSet" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy",
                        {"whenDeleted": "Retain", "whenScaled": "Retain"})
        default_template(spec.get("template"))
    elif kind == "DaemonSet" and isinstance(spec, dict):
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_template(spec.get("template"))
        # The registry keeps the internal spec.templateGeneration (1 on create, +1 on every
        # template change) in this annotation; the controller labels pods with it.
        tg = 1
        if old is not None:
            prev = deep_get(old, "metadata", "annotations", DS_TEMPLATE_GENERATION) or ""
            tg = int(prev) if prev.isdigit() else int(deep_get(old, "metadata", "generation") or 1)
            if canon(spec.get("template")) != canon(deep_get(old, "spec", "template")):
                tg += 1
        md.setdefault("annotations", {})[DS_TEMPLATE_GENERATION] = str(tg)
    elif kind == "Job" and isinstance(spec, dict):
        # SetDefaults_Job (pkg/apis/batch/v1/defaults.go, v1.28). podReplacementPolicy is left
        # out: its gate (JobPodReplacementPolicy) is alpha and off in 1.28, which drops the field.
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        # A Job without labels of its own takes its template's (before the generated selector
        # labels are added by the strategy's PrepareForCreate).
        tl = deep_get(spec, "template", "metadata", "labels")
        if old is None and tl and not md.get("labels"):
            md["labels"] = dict(tl)
        if old is None and "selector" not in spec:
            uid = md.get("uid", "")
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            lbl = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault(
                "labels", {})
            lbl.update({"batch.kubernetes.io/controller-uid": uid,
                        "batch.kubernetes.io/job-name": md.get("name", ""),
                        "controller-uid": uid, "job-name": md.get("name", "")})
        default_template(spec.get("template"))
    elif kind == "CronJob" and isinstance(spec, dict):
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        default_template(deep_get(spec, "jobTemplate", "spec", "template"))
    elif kind == "Service" and isinstance(spec, dict):
        stype = spec.setdefault("type", "ClusterIP")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "targetPort" not in p and "port" in p:
                    p["targetPort"] = p["port"]
                if stype in ("NodePort", "LoadBalancer") and "nodePort" not in p:
                    old_np = None
                    for op in deep_get(old, "spec", "ports", default=[]) or []:
                        if op.get("port") == p.get("port") and op.get("nodePort"):
                            old_np = op["nodePort"]
                    p["nodePort"] = old_np or random.randint(30000, 32767)
        if stype != "ExternalName":
            if "clusterIP" not in spec:
                spec["clusterIP"] = deep_get(old, "spec", "clusterIP") or cluster.alloc_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
    elif kind == "Namespace":
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.setdefault("data", {})
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
        if old is None:
            sa = spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
            spec.setdefault("serviceAccount", sa)
            spec.setdefault("enableServiceLinks", True)
            spec.setdefault("priority", 0)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
            tol = spec.setdefault("tolerations", [])
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
                if not any(t.get("key") == key for t in tol if isinstance(t, dict)):
                    tol.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
            if spec.get("automountServiceAccountToken") is not False:
                vol = "kube-api-access-" + rand_suffix(5)
                spec.setdefault("volumes", []).append({"name": vol, "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt",
                                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
                    "defaultMode": 420}})
                for c in spec.get("containers") or []:
                    c.setdefault("volumeMounts", []).append(
                        {"name": vol, "readOnly": True,
                         "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    elif kind == "EndpointSlice":
        for p in obj.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def default_status(rt, obj):
    """Status a freshly created object starts with (status writes on create are dropped)."""
    kind = rt.kind
    if kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    if kind == "Service":
        return {"loadBalancer": {}}
    if kind == "Namespace":
        return {"phase": "Active"}
    if kind in ("Deployment", "DaemonSet", "Job", "CronJob", "HorizontalPodAutoscaler",
                "Ingress", "PodDisruptionBudget", "Node"):
        if kind == "Ingress":
            return {"loadBalancer": {}}
        if kind == "PodDisruptionBudget":
            return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                    "expectedPods": 0}
        if kind == "DaemonSet":
            return {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                    "desiredNumberScheduled": 0, "numberReady": 0}
        return {}
    if kind in ("ReplicaSet", "StatefulSet"):
        return {"replicas": 0, "availableReplicas": 0} if kind == "StatefulSet" else {
            "replicas": 0}
    return None


DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def go_map(d):
    """fmt %#v of a map[string]string (keys sorted)."""
    return "map[string]string{%s}" % ", ".join(
        "%s:%s" % (json.dumps(k), json.dumps(v)) for k, v in sorted((d or {}).items()))


def go_label_selector(sel):
    sel = sel or {}
    ml = go_map(sel.get("matchLabels")) if sel.get("matchLabels") is not None else \
        "map[string]string(nil)"
    me = "[]v1.LabelSelectorRequirement(nil)"
    if sel.get("matchExpressions"):
        me = "[]v1.LabelSelectorRequirement{%s}" % ", ".join(
            'v1.LabelSelectorRequirement{Key:%s, Operator:%s, Values:[]string{%s}}' % (
                json.dumps(e.get("key")), json.dumps(e.get("operator")),
                ", ".join(json.dumps(v) for v in e.get("values") or []))
            for e in sel["matchExpressions"])
    return "v1.LabelSelector{MatchLabels:%s, MatchExpressions:%s}" % (ml, me)


def validate_object(rt, obj, old):
    """Return a list of StatusCauses (empty when valid)."""
    causes = []
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    if rt.kind in ("Namespace",):
        ok, what = DNS1123_LABEL.match(name or ""), "RFC 1123 label"
    elif rt.kind == "Service":
        ok, what = DNS1035_LABEL.match(name or ""), "RFC 1035 label"
    elif rt.kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Event"):
        ok, what = bool(name) and "/" not in name and "%" not in name, None
    else:
        ok, what = DNS1123_SUB.match(name or "") and len(name) <= 253, "RFC 1123 subdomain"
    if not name:
        causes.append(cause("FieldValueRequired", "Required value: name or generateName is required",
                            "metadata.name"))
    elif not ok and what == "RFC 1123 subdomain":
        causes.append(cause(
            "FieldValueInvalid",
            'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*"
            "[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')" % name, "metadata.name"))
    elif not ok and what == "RFC 1123 label":
        causes.append(cause(
            "FieldValueInvalid",
            'Invalid value: "%s": a lowercase RFC 1123 label must consist of lower case '
            "alphanumeric characters or '-', and must start and end with an alphanumeric "
            "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')" % name, "metadata.name"))
    elif not ok and what == "RFC 1035 label":
        causes.append(cause(
            "FieldValueInvalid",
            'Invalid value: "%s": a DNS-1035 label must consist of lower case alphanumeric '
            "characters or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
            "is '[a-z]([-a-z0-9]*[a-z0-9])?')" % name, "metadata.name"))
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if rt.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        reps = spec.get("replicas")
        if isinstance(reps, int) and reps < 0:
            causes.append(cause("FieldValueInvalid",
                                "Invalid value: %d: must be greater than or equal to 0" % reps,
                                "spec.replicas"))
        sel = spec.get("selector")
        tlabels = deep_get(spec, "template", "metadata", "labels") or {}
        if not sel:
            causes.append(cause("FieldValueRequired", "Required value", "spec.selector"))
        if sel is None or not label_match(selector_from_label_selector(sel) or [], tlabels) or \
                not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(cause(
                "FieldValueInvalid",
                "Invalid value: %s: `selector` does not match template `labels`" % go_map(
                    tlabels), "spec.template.metadata.labels"))
        if old is not None and canon(deep_get(old, "spec", "selector")) != canon(sel):
            causes.append(cause("FieldValueInvalid",
                                "Invalid value: %s: field is immutable" % go_label_selector(sel),
                                "spec.selector"))
        causes.extend(validate_pod_spec(deep_get(spec, "template", "spec") or {},
                                        "spec.template.spec"))
    elif rt.kind == "Pod":
        causes.extend(validate_pod_spec(spec, "spec"))
    elif rt.kind == "Job":
        causes.extend(validate_job(spec, old))
    return causes


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def validate_job(spec, old):
    """ValidateJob / ValidateJobUpdate (pkg/apis/batch/validation/validation.go, v1.28), the
    parts a client meets: the template's label values (the generated job-name labels carry the
    Job's name, so a name over 63 characters is refused here), restartPolicy, and the immutable
    template and selector."""
    causes = []
    tmpl = spec.get("template") or {}
    for k, v in sorted((deep_get(tmpl, "metadata", "labels") or {}).items()):
        v = str(v)
        if len(v) > 63:
            causes.append(cause("FieldValueInvalid", 'Invalid value: "%s": must be no more than 63 '
                                "characters" % v, "spec.template.labels"))
        if not LABEL_VALUE.match(v):
            causes.append(cause(
                "FieldValueInvalid",
                'Invalid value: "%s": a valid label must be an empty string or consist of '
                "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
                "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')" % v,
                "spec.template.labels"))
    causes.extend(validate_pod_spec(tmpl.get("spec") or {}, "spec.template.spec"))
    rp = deep_get(tmpl, "spec", "restartPolicy") or ""
    if rp in ("Always", ""):
        causes.append(cause("FieldValueRequired", 'Required value: valid values: "OnFailure", '
                            '"Never"', "spec.template.spec.restartPolicy"))
    elif rp not in ("OnFailure", "Never"):
        causes.append(cause("FieldValueNotSupported", 'Unsupported value: "%s": supported '
                            'values: "OnFailure", "Never"' % rp,
                            "spec.template.spec.restartPolicy"))
    if old is not None:
        if canon(deep_get(old, "spec", "selector")) != canon(spec.get("selector")):
            causes.append(cause("FieldValueInvalid", "Invalid value: %s: field is immutable" %
                                go_label_selector(spec.get("selector")), "spec.selector"))
        if canon(deep_get(old, "spec", "template")) != canon(tmpl):
            # ValidateImmutableField prints the new internal core.PodTemplateSpec with %#v; its
            # pointers print as addresses, so no client can match the whole text: the start,
            # the labels and the end (": field is immutable") are what clients and people read.
            causes.append(cause("FieldValueInvalid", "Invalid value: %s: field is immutable" %
                                go_pod_template(tmpl), "spec.template"))
    return causes


def go_pod_template(t):
    """An abbreviated fmt %#v of a core.PodTemplateSpec (the shape kubectl users see)."""
    md = t.get("metadata") or {}
    labels = go_map(md.get("labels")) if md.get("labels") else "map[string]string(nil)"
    ann = go_map(md.get("annotations")) if md.get("annotations") else "map[string]string(nil)"
    containers = ", ".join(
        "core.Container{Name:%s, Image:%s, Command:%s, Args:%s, ...}" % (
            json.dumps(c.get("name", "")), json.dumps(c.get("image", "")),
            "[]string{%s}" % ", ".join(json.dumps(x) for x in c["command"])
            if c.get("command") else "[]string(nil)",
            "[]string{%s}" % ", ".join(json.dumps(x) for x in c["args"])
            if c.get("args") else "[]string(nil)")
        for c in deep_get(t, "spec", "containers", default=[]) or [])
    return ('core.PodTemplateSpec{ObjectMeta:v1.ObjectMeta{Name:%s, GenerateName:"", '
            'Namespace:"", SelfLink:"", UID:"", ResourceVersion:"", Generation:0, '
            "CreationTimestamp:time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC), "
            "DeletionTimestamp:<nil>, DeletionGracePeriodSeconds:(*int64)(nil), Labels:%s, "
            "Annotations:%s, OwnerReferences:[]v1.OwnerReference(nil), Finalizers:[]string(nil), "
            "ManagedFields:[]v1.ManagedFieldsEntry(nil)}, Spec:core.PodSpec{Containers:"
            "[]core.Container{%s}, RestartPolicy:%s, ...}}" % (
                json.dumps(md.get("name", "")), labels, ann, containers,
                json.dumps(deep_get(t, "spec", "restartPolicy", default=""))))


def validate_pod_spec(ps, prefix):
    causes = []
    containers = ps.get("containers")
    if not containers:
        causes.append(cause("FieldValueRequired", "Required value", prefix + ".containers"))
        return causes
    seen = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            continue
        if not c.get("name"):
            causes.append(cause("FieldValueRequired", "Required value",
                                "%s.containers[%d].name" % (prefix, i)))
        elif c["name"] in seen:
            causes.append(cause("FieldValueDuplicate", 'Duplicate value: "%s"' % c["name"],
                                "%s.containers[%d].name" % (prefix, i)))
        seen.add(c.get("name"))
        if not c.get("image"):
            causes.append(cause("FieldValueRequired", "Required value",
                                "%s.containers[%d].image" % (prefix, i)))
    return causes


def check_microtimes(rt, obj):
    """Leases: MicroTime fields must carry 6 fractional digits, else 400 (recording 06)."""
    if rt.kind != "Lease":
        return
    for f in ("acquireTime", "renewTime"):
        v = deep_get(obj, "spec", f)
        if v is not None and (not isinstance(v, str) or not MICROTIME_RE.match(v)):
            raise err_bad_request(
                'Lease in version "v1" cannot be handled as a Lease: parsing time "%s" as '
                '"2006-01-02T15:04:05.000000Z07:00": cannot parse "%s" as ".000000"' % (
                    v, str(v)[19:] if isinstance(v, str) else v))


# events.k8s.io/v1 <-> core/v1 Event conversion (one storage, two views).


def event_core_to_v1(e):
    out = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": e.get("metadata", {}),
           "eventTime": e.get("eventTime")}
    if e.get("series"):
        out["series"] = e["series"]
    if e.get("reportingComponent"):
        out["reportingController"] = e["reportingComponent"]
    if e.get("reportingInstance"):
        out["reportingInstance"] = e["reportingInstance"]
    if e.get("action"):
        out["action"] = e["action"]
    if e.get("reason"):
        out["reason"] = e["reason"]
    out["regarding"] = e.get("involvedObject", {})
    if e.get("related"):
        out["related"] = e["related"]
    if e.get("message"):
        out["note"] = e["message"]
    if e.get("type"):
        out["type"] = e["type"]
    if e.get("source"):
        out["deprecatedSource"] = e["source"]
    if e.get("firstTimestamp"):
        out["deprecatedFirstTimestamp"] = e["firstTimestamp"]
    if e.get("lastTimestamp"):
        out["deprecatedLastTimestamp"] = e["lastTimestamp"]
    if e.get("count"):
        out["deprecatedCount"] = e["count"]
    return out


def event_v1_to_core(e):
    out = {"kind": "Event", "apiVersion": "v1", "metadata": e.get("metadata", {}),
           "involvedObject": e.get("regarding") or {}, "reason": e.get("reason", ""),
           "message": e.get("note", ""), "source": e.get("deprecatedSource") or (
               {"component": e["reportingController"]} if e.get("reportingController") else {}),
           "firstTimestamp": e.get("deprecatedFirstTimestamp"),
           "lastTimestamp": e.get("deprecatedLastTimestamp"),
           "count": e.get("deprecatedCount", 0), "type": e.get("type", ""),
           "eventTime": e.get("eventTime"), "reportingComponent": e.get("reportingController", ""),
           "reportingInstance": e.get("reportingInstance", "")}
    if e.get("series"):
        out["series"] = e["series"]
    if e.get("action"):
        out["action"] = e["action"]
    if e.get("related"):
        out["related"] = e["related"]
    if not out["count"]:
        out.pop("count")
    return out


def to_view(rt, obj):
    """Stored object -> what the client asked for (only events.k8s.io differs)."""
    if obj is None:
        return None
    if rt.group == "events.k8s.io":
        return event_core_to_v1(obj)
    return obj


def from_view(rt, obj):
    if rt.group == "events.k8s.io":
        return event_v1_to_core(obj)
    return obj


# ----------------------------------------------------------------------------------------------
# The store: objects, one global resourceVersion, watch history, CRUD semantics
# ----------------------------------------------------------------------------------------------

BOOKMARK_EXTRA = {
    "Deployment": {"spec": {"replicas": 0, "selector": None, "template": {
        "metadata": {"creationTimestamp": None}, "spec": {"containers": None}}, "strategy": {}},
        "status": {}},
    "ReplicaSet": {"spec": {"replicas": 0, "selector": None, "template": {
        "metadata": {"creationTimestamp": None}, "spec": {"containers": None}}},
        "status": {"replicas": 0}},
    "StatefulSet": {"spec": {"selector": None, "template": {
        "metadata": {"creationTimestamp": None}, "spec": {"containers": None}},
        "serviceName": "", "updateStrategy": {}}, "status": {"replicas": 0,
                                                             "availableReplicas": 0}},
    "DaemonSet": {"spec": {"selector": None, "template": {
        "metadata": {"creationTimestamp": None}, "spec": {"containers": None}},
        "updateStrategy": {}}, "status": {"currentNumberScheduled": 0,
                                          "numberMisscheduled": 0,
                                          "desiredNumberScheduled": 0, "numberReady": 0}},
    "Pod": {"spec": {"containers": None}, "status": {}},
    "EndpointSlice": {"addressType": "", "endpoints": None, "ports": None},
    "Service": {"spec": {}, "status": {"loadBalancer": {}}},
    "Event": {"involvedObject": {}, "source": {}, "firstTimestamp": None,
              "lastTimestamp": None, "eventTime": None, "reportingComponent": "",
              "reportingInstance": ""},
    "Lease": {"spec": {}},
    "Namespace": {"spec": {}, "status": {}},
    "Job": {"spec": {"template": {"metadata": {"creationTimestamp": None},
                                  "spec": {"containers": None}}}, "status": {}},
}

# Resources whose PUT creates a missing object (rest.Updater AllowCreateOnUpdate).
CREATE_ON_UPDATE = {"leases", "endpoints", "events"}


class WatchEvent:
    __slots__ = ("rv", "type", "storage", "ns", "name", "obj", "old")

    def __init__(self, rv, etype, storage, ns, name, obj, old):
        self.rv, self.type, self.storage, self.ns, self.name = rv, etype, storage, ns, name
        self.obj, self.old = obj, old


class Cluster:
    """All API state.  Every mutation goes through _commit(), under self.lock."""

    def __init__(self, time_scale=1.0, history=10000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 100
        self.data = {}
        self.history = deque(maxlen=history)
        self.evicted_upto = 0
        self.uid_index = {}
        self.last_rv = {}
        self.used_ips = set()
        self.time_scale = time_scale
        # --stale-status-hold (seconds, before --time-scale); see DeploymentController.
        self.stale_status_hold = 0.0
        self.stopping = False
        self.recorder = EventRecorder(self)
        self._pod_ip = 2

    # ---- low level --------------------------------------------------------------------------
    def alloc_ip(self):
        while True:
            ip = "10.96.%d.%d" % (random.randint(0, 255), random.randint(1, 254))
            if ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip

    def alloc_pod_ip(self):
        self._pod_ip += 1
        n = self._pod_ip
        return "10.244.%d.%d" % ((n // 250) % 256, n % 250 + 2)

    def bucket(self, storage):
        return self.data.setdefault(storage, {})

    def get(self, rt, ns, name):
        return self.bucket(rt.storage).get((ns if rt.namespaced else "", name))

    def get_by_uid(self, uid):
        k = self.uid_index.get(uid)
        if not k:
            return None
        return self.bucket(k[0]).get((k[1], k[2]))

    def objects(self, rt, ns=None):
        b = self.bucket(rt.storage)
        keys = sorted(k for k in b if ns is None or k[0] == ns)
        return [b[k] for k in keys]

    def _commit(self, rt, obj, etype, old=None):
        """Store (or remove) an object, assign the next resourceVersion, record the event."""
        self.rv += 1
        rv = self.rv
        md = obj["metadata"]
        md["resourceVersion"] = str(rv)
        obj["metadata"] = md = order_metadata(md)
        # Serialise like the API server: kind, apiVersion, metadata, then the rest.
        rest = [(k, obj.pop(k)) for k in list(obj.keys()) if k not in ("kind", "apiVersion",
                                                                      "metadata")]
        kind, apiv = obj.pop("kind", None), obj.pop("apiVersion", None)
        obj.pop("metadata")
        obj["kind"], obj["apiVersion"], obj["metadata"] = kind, apiv, md
        obj.update(rest)
        ns = md.get("namespace", "") if rt.namespaced else ""
        key = (ns, md["name"])
        b = self.bucket(rt.storage)
        if etype == "DELETED":
            b.pop(key, None)
            self.uid_index.pop(md.get("uid"), None)
        else:
            b[key] = obj
            self.uid_index[md.get("uid")] = (rt.storage, key[0], key[1])
        if len(self.history) == self.history.maxlen:
            self.evicted_upto = self.history[0].rv
        self.history.append(WatchEvent(rv, etype, rt.storage, key[0], key[1], obj, old))
        self.last_rv[rt.storage] = rv
        self.cond.notify_all()
        return obj

    def storage_rt(self, storage):
        for r in RESOURCES:
            if r.storage == storage and (r.group, r.resource) == storage:
                return r
        raise KeyError(storage)

    # ---- namespace checks -------------------------------------------------------------------
    def check_namespace_for_create(self, rt, ns, name=""):
        if not rt.namespaced:
            return
        nso = self.get(RT["namespaces"], "", ns)
        if nso is None:
            raise err_ns_not_found(ns)
        if deep_get(nso, "metadata", "deletionTimestamp"):
            raise ApiError(
                403, "Forbidden",
                '%s "%s" is forbidden: unable to create new content in namespace %s because it '
                "is being terminated" % (gr_string(rt), name, ns),
                gr_details(rt, name))

    # ---- create -------------------------------------------------------------------------------
    def create(self, rt, ns, body, manager, dry_run=False, mf=None, keep_status=False):
        """POST semantics.  `mf` is given when server-side apply creates the object."""
        with self.lock:
            obj = copy.deepcopy(from_view(rt, body))
            if not isinstance(obj, dict):
                raise err_bad_request("the object provided is unrecognized")
            md = obj.get("metadata")
            if not isinstance(md, dict):
                md = obj["metadata"] = {}
            if rt.namespaced:
                if md.get("namespace") and md["namespace"] != ns:
                    raise err_bad_request("the namespace of the provided object does not match "
                                          "the namespace sent on the request")
                md["namespace"] = ns
            else:
                md.pop("namespace", None)
            self.check_namespace_for_create(rt, ns, md.get("name") or "")
            if not md.get("name") and md.get("generateName"):
                for _ in range(20):
                    cand = md["generateName"] + rand_suffix(5)
                    if self.get(rt, ns, cand) is None:
                        md["name"] = cand
                        break
            name = md.get("name")
            if not name:
                raise err_invalid(rt, "", [cause("FieldValueRequired",
                                                 "Required value: name or generateName is "
                                                 "required", "metadata.name")])
            if self.get(rt, ns, name) is not None:
                raise err_already_exists(rt, name)
            storage_rt = self.storage_rt(rt.storage)
            obj["apiVersion"] = storage_rt.api_version
            obj["kind"] = storage_rt.kind
            for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "selfLink", "managedFields", "generation"):
                md.pop(k, None)
            md["uid"] = new_uid()
            md["creationTimestamp"] = fmt_time()
            if rt.has_generation:
                md["generation"] = 1
            sent = copy.deepcopy(obj)
            if rt.status_sub and not keep_status:
                obj.pop("status", None)  # status written on create is dropped
                sent.pop("status", None)
            check_microtimes(rt, obj)
            default_object(rt, obj, None, self)
            if rt.status_sub and not keep_status:
                st = default_status(rt, obj)
                if st is not None:
                    obj["status"] = st
            causes = validate_object(rt, obj, None)
            if causes:
                raise err_invalid(rt, name, causes)
            if mf is None:
                mf = ManagedFields([])
                mf.record_update({}, sent, manager, "", rt.api_version, rt.kind)
            else:
                for e in mf.entries:
                    e["time"] = fmt_time()
            md["managedFields"] = mf.encode()
            if not md["managedFields"]:
                del md["managedFields"]
            # Keep metadata keys in the API server's order for readability.
            obj["metadata"] = order_metadata(md)
            if dry_run:
                return obj
            return self._commit(rt, obj, "ADDED")

    # ---- update (PUT, patches, apply, controllers) --------------------------------------------
    def update(self, rt, ns, name, body, manager, subresource=None, dry_run=False):
        """PUT semantics."""
        with self.lock:
            new = copy.deepcopy(from_view(rt, body))
            if not isinstance(new, dict):
                raise err_bad_request("the object provided is unrecognized")
            md = new.get("metadata") or {}
            if md.get("name") and md["name"] != name:
                raise err_bad_request("the name of the object (%s) does not match the name on "
                                      "the URL (%s)" % (md["name"], name))
            old = self.get(rt, ns, name)
            if old is None:
                if rt.resource in CREATE_ON_UPDATE and subresource is None:
                    new.setdefault("metadata", {})["name"] = name
                    new["metadata"].pop("resourceVersion", None)
                    return self.create(rt, ns, to_view(rt, new), manager, dry_run), True
                raise err_not_found(rt, name)
            rv = md.get("resourceVersion")
            if rv:
                if rv != old["metadata"]["resourceVersion"]:
                    raise err_conflict(rt, name)
            elif rt.kind == "Lease":
                raise ApiError(
                    422, "Invalid",
                    '%s "%s" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be '
                    "specified for an update" % (gr_string(rt), name),
                    dict(gr_details(rt, name), causes=[cause(
                        "FieldValueInvalid", "Invalid value: 0x0: must be specified for an update",
                        "metadata.resourceVersion")]))
            check_microtimes(rt, new)
            return self.save(rt, old, new, manager, subresource, dry_run), False

    def save(self, rt, old, new, manager, subresource=None, dry_run=False, mf=None, raw=False):
        """Common write path: system metadata, status/spec split, defaulting, validation,
        generation, managedFields, no-op detection, deletion completion, commit."""
        with self.lock:
            new = copy.deepcopy(new)
            omd = old["metadata"]
            md = new.get("metadata")
            if not isinstance(md, dict):
                md = new["metadata"] = {}
            for k in ("name", "namespace", "uid", "creationTimestamp", "generation",
                      "deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
                if k in omd:
                    md[k] = omd[k]
                else:
                    md.pop(k, None)
            storage_rt = self.storage_rt(rt.storage)
            new["apiVersion"] = storage_rt.api_version
            new["kind"] = storage_rt.kind
            if raw:
                pass  # internal writes by the simulated scheduler/kubelet: keep spec and status
            elif subresource == "status":
                for k in list(new.keys()):
                    if k not in ("apiVersion", "kind", "metadata", "status"):
                        new.pop(k)
                for k, v in old.items():
                    if k not in ("apiVersion", "kind", "metadata", "status"):
                        new[k] = copy.deepcopy(v)
                for k in ("labels", "ownerReferences", "finalizers"):
                    if k in omd:
                        md[k] = copy.deepcopy(omd[k])
                    else:
                        md.pop(k, None)
            elif rt.status_sub:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if rt.kind == "Namespace" and subresource != "status":
                new["spec"] = copy.deepcopy(old.get("spec", {}))
            default_object(rt, new, old, self)
            causes = validate_object(rt, new, old)
            if causes:
                raise err_invalid(rt, md.get("name", ""), causes)
            if rt.has_generation:
                if rt.kind == "EndpointSlice":
                    changed = any(canon(new.get(k)) != canon(old.get(k))
                                  for k in ("addressType", "endpoints", "ports"))
                else:
                    changed = canon(new.get("spec")) != canon(old.get("spec"))
                if changed:
                    md["generation"] = int(omd.get("generation", 1)) + 1
            body_changed = canon(_without_mf(new)) != canon(_without_mf(old))
            if mf is None:
                mf = ManagedFields(omd.get("managedFields"))
                mf.record_update(old, new, manager, subresource or "", rt.api_version, rt.kind)
            else:
                for e in mf.entries:
                    if e.get("manager") == manager and e.get("operation") == "Apply" and (
                            body_changed or e["_set"] != e.get("_prev")):
                        e["time"] = fmt_time()
            md["managedFields"] = mf.encode()
            if not md["managedFields"]:
                del md["managedFields"]
            new["metadata"] = order_metadata(md)
            if canon(_without_rv(new)) == canon(_without_rv(old)):
                return old  # no-op: nothing written, same resourceVersion, no watch event
            if dry_run:
                return new
            if md.get("deletionTimestamp") and not md.get("finalizers") and rt.kind != "Pod":
                return self._commit(rt, new, "DELETED", old)
            return self._commit(rt, new, "MODIFIED", old)

    # ---- patch and apply --------------------------------------------------------------------
    def patch(self, rt, ns, name, ptype, patch, manager, subresource=None, dry_run=False):
        with self.lock:
            old = self.get(rt, ns, name)
            if old is None:
                raise err_not_found(rt, name)
            if subresource == "scale":
                view = scale_view(rt, old)
            else:
                view = to_view(rt, copy.deepcopy(old))
            try:
                if ptype == "merge":
                    patched = merge_patch(view, patch)
                elif ptype == "strategic":
                    patched = strategic_merge(view, patch, (), rt.kind)
                else:
                    patched = json_patch(view, patch)
            except (PatchError, TypeError, AttributeError, KeyError, ValueError):
                raise ApiError(422, "Invalid",
                               "the server rejected our request due to an error in our request",
                               {})
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid",
                               "the server rejected our request due to an error in our request",
                               {})
            prv = deep_get(patched, "metadata", "resourceVersion")
            if prv and prv != old["metadata"]["resourceVersion"]:
                raise err_conflict(rt, name)
            if subresource == "scale":
                return self.save_scale(rt, old, patched, manager, dry_run)
            check_microtimes(rt, patched)
            return self.save(rt, old, from_view(rt, patched), manager, subresource, dry_run)

    def save_scale(self, rt, old, scale, manager, dry_run):
        reps = deep_get(scale, "spec", "replicas")
        if not isinstance(reps, int) or reps < 0:
            raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: '
                           "Invalid value: %s: must be greater than or equal to 0" % (
                               old["metadata"]["name"], reps),
                           {"name": old["metadata"]["name"], "group": "autoscaling",
                            "kind": "Scale", "causes": [cause(
                                "FieldValueInvalid", "Invalid value: %s: must be greater than or "
                                "equal to 0" % reps, "spec.replicas")]})
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = reps
        res = self.save(rt, old, new, manager, "scale", dry_run)
        return res

    def apply(self, rt, ns, name, applied, manager, force, subresource=None, dry_run=False):
        """Server-side apply (PATCH application/apply-patch+yaml)."""
        with self.lock:
            if not isinstance(applied, dict):
                raise err_bad_request("error decoding YAML: the apply body must be an object")
            amd = applied.get("metadata") or {}
            if amd.get("name") and amd["name"] != name:
                raise err_bad_request("the name of the object (%s) does not match the name on "
                                      "the URL (%s)" % (amd["name"], name))
            if rt.namespaced and amd.get("namespace") and amd["namespace"] != ns:
                raise err_bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
            extra = sorted(set(applied) - rt.top_fields)
            if extra:
                raise ApiError(500, None,
                               "failed to create typed patch object (/%s; %s, Kind=%s): .%s: "
                               "field not declared in schema" % (
                                   name, rt.api_version if rt.group else "/" + rt.version,
                                   rt.kind, extra[0]))
            old = self.get(rt, ns, name)
            arv = amd.get("resourceVersion")
            if arv and old is not None and arv != old["metadata"]["resourceVersion"]:
                raise err_conflict(rt, name)
            applied = from_view(rt, copy.deepcopy(applied))
            applied.pop("apiVersion", None)
            applied.pop("kind", None)
            check_microtimes(rt, applied)
            if subresource == "status":
                applied = {k: v for k, v in applied.items() if k in ("metadata", "status")}
                applied["metadata"] = {}
            elif rt.status_sub:
                applied.pop("status", None)
            if old is None:
                if subresource:
                    raise err_not_found(rt, name)
                self.check_namespace_for_create(rt, ns, name)
                merged, mf = server_side_apply(None, applied, manager, force, rt.kind,
                                               rt.api_version, "")
                merged.setdefault("metadata", {})["name"] = name
                return self.create(rt, ns, to_view(rt, merged), manager, dry_run, mf=mf), True
            merged, mf = server_side_apply(old, applied, manager, force, rt.kind, rt.api_version,
                                           subresource or "")
            return self.save(rt, old, merged, manager, subresource, dry_run, mf=mf), False

    # ---- delete -------------------------------------------------------------------------------
    def delete(self, rt, ns, name, opts=None, dry_run=False):
        """Returns (http code, body) like the API server's DELETE."""
        opts = opts or {}
        with self.lock:
            old = self.get(rt, ns, name)
            if old is None:
                raise err_not_found(rt, name)
            pre = opts.get("preconditions") or {}
            omd = old["metadata"]
            group_kind = rt.kind + ("." + rt.group if rt.group else "")
            if pre.get("resourceVersion") and pre["resourceVersion"] != omd["resourceVersion"]:
                raise ApiError(
                    409, "Conflict",
                    'Operation cannot be fulfilled on %s "%s": the ResourceVersion in the '
                    "precondition (%s) does not match the ResourceVersion in record (%s). The "
                    "object might have been modified" % (group_kind, name, pre["resourceVersion"],
                                                         omd["resourceVersion"]),
                    gr_details(rt, name, rt.kind))
            if pre.get("uid") and pre["uid"] != omd.get("uid"):
                raise ApiError(
                    409, "Conflict",
                    'Operation cannot be fulfilled on %s "%s": Precondition failed: UID in '
                    "precondition: %s, UID in object meta: %s" % (group_kind, name, pre["uid"],
                                                                  omd.get("uid")),
                    gr_details(rt, name, rt.kind))
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is True:
                policy = "Orphan"
            grace = opts.get("gracePeriodSeconds")
            if rt.kind == "Pod":
                return 200, to_view(rt, self.delete_pod(old, grace, dry_run))
            if rt.kind == "Namespace":
                if omd.get("deletionTimestamp"):
                    return 200, old
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = fmt_time()
                new["status"] = {"phase": "Terminating"}
                if dry_run:
                    return 200, new
                return 200, self._commit(rt, new, "MODIFIED", old)
            if policy == "Orphan" and not dry_run:
                self.orphan_dependents(omd.get("uid"))
            if policy == "Foreground" or omd.get("finalizers"):
                new = copy.deepcopy(old)
                nmd = new["metadata"]
                if not nmd.get("deletionTimestamp"):
                    nmd["deletionTimestamp"] = fmt_time()
                    nmd["deletionGracePeriodSeconds"] = 0
                    if rt.has_generation:
                        nmd["generation"] = int(nmd.get("generation", 1)) + 1
                if policy == "Foreground":
                    fins = nmd.setdefault("finalizers", [])
                    if "foregroundDeletion" not in fins:
                        fins.append("foregroundDeletion")
                new["metadata"] = order_metadata(nmd)
                if canon(new) == canon(old):
                    return 200, to_view(rt, old)
                if dry_run:
                    return 200, to_view(rt, new)
                return 200, to_view(rt, self._commit(rt, new, "MODIFIED", old))
            details = gr_details(rt, name)
            details["uid"] = omd.get("uid")
            st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": details}
            if dry_run:
                return 200, st
            gone = copy.deepcopy(old)
            self._commit(rt, gone, "DELETED", old)
            return 200, st

    def delete_pod(self, old, grace=None, dry_run=False):
        rt = RT["pods"]
        omd = old["metadata"]
        spec_grace = deep_get(old, "spec", "terminationGracePeriodSeconds", default=30)
        if grace is None:
            grace = spec_grace if spec_grace is not None else 30
        grace = max(0, int(grace))
        if omd.get("deletionTimestamp"):
            if grace >= int(omd.get("deletionGracePeriodSeconds", 0) or 0) and grace != 0:
                return old
        new = copy.deepcopy(old)
        nmd = new["metadata"]
        if not deep_get(old, "spec", "nodeName") or grace == 0 or \
                deep_get(old, "status", "phase") in ("Succeeded", "Failed"):
            nmd["deletionTimestamp"] = fmt_time()
            nmd["deletionGracePeriodSeconds"] = 0
            if dry_run:
                return new
            if nmd.get("finalizers"):
                return self._commit(rt, new, "MODIFIED", old)
            return self._commit(rt, new, "DELETED", old)
        nmd["deletionTimestamp"] = fmt_time(time.time() + grace)
        nmd["deletionGracePeriodSeconds"] = grace
        new["metadata"] = order_metadata(nmd)
        if dry_run:
            return new
        return self._commit(rt, new, "MODIFIED", old)

    def orphan_dependents(self, uid):
        for storage, bucket in list(self.data.items()):
            for key, obj in list(bucket.items()):
                refs = deep_get(obj, "metadata", "ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    rt = self.storage_rt(storage)
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    self.save(rt, obj, new, "kube-controller-manager")

    # ---- helpers for controllers ------------------------------------------------------------
    def c_update(self, rt, old, new, manager="kube-controller-manager", subresource=None,
                 raw=False):
        try:
            return self.save(rt, old, new, manager, subresource, raw=raw)
        except ApiError as e:
            log("controller write failed: %s" % e.message)
            return old

    def c_create(self, rt, ns, obj, manager="kube-controller-manager"):
        try:
            return self.create(rt, ns, obj, manager)
        except ApiError as e:
            log("controller create failed: %s" % e.message)
            return None


def _without_rv(obj):
    o = dict(obj)
    o["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return o


def _without_mf(obj):
    o = dict(obj)
    o["metadata"] = {k: v for k, v in obj.get("metadata", {}).items()
                     if k not in ("resourceVersion", "managedFields")}
    return o


METADATA_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                  "generation", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
                  "finalizers", "managedFields"]


def order_metadata(md):
    out = {k: md[k] for k in METADATA_ORDER if k in md}
    for k, v in md.items():
        if k not in out:
            out[k] = v
    return out


def scale_view(rt, obj):
    md = obj["metadata"]
    status = obj.get("status") or {}
    sel = deep_get(obj, "spec", "selector")
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": md["name"], "namespace": md.get("namespace"),
                         "uid": md.get("uid"), "resourceVersion": md.get("resourceVersion"),
                         "creationTimestamp": md.get("creationTimestamp")},
            "spec": {"replicas": deep_get(obj, "spec", "replicas", default=0)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": label_selector_string(sel) if sel else ""}}


# ----------------------------------------------------------------------------------------------
# Events (client-go's EventRecorder + EventCorrelator: dedup by count, aggregation after 10
# similar events into "(combined from similar events): ...")
# ----------------------------------------------------------------------------------------------


class EventRecorder:
    MAX_SIMILAR = 10

    def __init__(self, cluster):
        self.cluster = cluster
        self.similar = {}  # aggregate key -> set of messages
        self.seen = {}  # full key -> (ns, event name)

    def emit(self, obj, etype, reason, message, component, host=None, field_path=None,
             reporting_component=None):
        c = self.cluster
        md = obj.get("metadata", {})
        ns = md.get("namespace") or "default"
        involved = {"kind": obj.get("kind"), "namespace": md.get("namespace"),
                    "name": md.get("name"), "uid": md.get("uid"),
                    "apiVersion": obj.get("apiVersion"),
                    "resourceVersion": md.get("resourceVersion")}
        if not involved["namespace"]:
            involved.pop("namespace")
        if field_path:
            involved["fieldPath"] = field_path
        source = {"component": component}
        if host:
            source["host"] = host
        rc = component if reporting_component is None else reporting_component
        agg_key = (component, host, involved["kind"], involved.get("namespace"), involved["name"],
                   involved["uid"], involved["apiVersion"], etype, reason)
        msgs = self.similar.setdefault(agg_key, set())
        msgs.add(message)
        if len(msgs) > self.MAX_SIMILAR:
            # EventAggregator: one combined event per aggregate key; its reportingComponent
            # is empty, as the recording shows.
            message = "(combined from similar events): " + message
            full_key = agg_key
            rc = ""
        else:
            full_key = agg_key + (message,)
        now = fmt_time()
        with c.lock:
            prev = self.seen.get(full_key)
            ev = c.get(RT["events"], prev[0], prev[1]) if prev else None
            if ev is not None:
                new = copy.deepcopy(ev)
                new["count"] = int(new.get("count", 1)) + 1
                new["lastTimestamp"] = now
                new["message"] = message
                new["involvedObject"] = involved
                c.c_update(RT["events"], ev, new, "kube-controller-manager"
                           if component != "kubelet" else "kubelet")
                return
            name = "%s.%016x" % (md.get("name"), int(time.time() * 1e9) + random.randint(0, 999))
            ev = {"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": name, "namespace": ns},
                  "involvedObject": involved, "reason": reason, "message": message,
                  "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                  "type": etype, "eventTime": None, "reportingComponent": rc,
                  "reportingInstance": host or ""}
            nso = c.get(RT["namespaces"], "", ns)
            if nso is None or deleting(nso):
                return  # a terminating namespace accepts no new content
            created = c.c_create(RT["events"], ns, ev,
                                 "kubelet" if component == "kubelet" else
                                 "kube-scheduler" if component == "default-scheduler" else
                                 "kube-controller-manager")
            if created is not None:
                self.seen[full_key] = (ns, name)


# ----------------------------------------------------------------------------------------------
# Controller helpers
# ----------------------------------------------------------------------------------------------

REV = "deployment.kubernetes.io/revision"
DS_TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
REV_HIST = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAXREP = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
SKIP_COPY_ANNOTATIONS = {REV, REV_HIST, DESIRED, MAXREP,
                         "kubectl.kubernetes.io/last-applied-configuration",
                         "deprecated.deployment.rollback.to"}


def ctime(obj):
    return deep_get(obj, "metadata", "creationTimestamp", default="")


def controller_ref(owner):
    md = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": md["name"],
            "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}


def is_controlled_by(obj, owner):
    uid = owner["metadata"]["uid"]
    return any(r.get("controller") and r.get("uid") == uid
               for r in deep_get(obj, "metadata", "ownerReferences", default=[]) or [])


def deleting(obj):
    return bool(deep_get(obj, "metadata", "deletionTimestamp"))


def pod_condition(pod, ctype):
    for c in deep_get(pod, "status", "conditions", default=[]) or []:
        if c.get("type") == ctype:
            return c
    return None


def pod_ready(pod):
    c = pod_condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def int_or_percent(v, total, round_up):
    if isinstance(v, str) and v.endswith("%"):
        try:
            pct = int(v[:-1])
        except ValueError:
            return 0
        val = total * pct / 100.0
        return int(-(-val // 1)) if round_up else int(val // 1)
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def template_hash(template, collision_count=None):
    """controller.ComputeHash: FNV-32a over the template (+collisionCount), SafeEncodeString."""
    data = canon(template).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def _template_without_hash(t):
    """The template with the pod-template-hash label removed (shallow copies only)."""
    t = t or {}
    md = t.get("metadata")
    if not isinstance(md, dict) or not isinstance(md.get("labels"), dict):
        return t
    labels = {k: v for k, v in md["labels"].items() if k != HASH_LABEL}
    md2 = dict(md)
    if labels:
        md2["labels"] = labels
    else:
        md2.pop("labels")
    t2 = dict(t)
    t2["metadata"] = md2
    return t2


def equal_ignore_hash(t1, t2):
    return canon(_template_without_hash(t1)) == canon(_template_without_hash(t2))


def set_condition(status, cond):
    """deploymentutil.SetDeploymentCondition: no-op when status+reason are unchanged; keeps
    lastTransitionTime when only the reason changes; the condition moves to the end."""
    conds = status.get("conditions") or []
    cur = next((c for c in conds if c.get("type") == cond["type"]), None)
    if cur and cur.get("status") == cond["status"] and cur.get("reason") == cond["reason"]:
        return
    if cur and cur.get("status") == cond["status"]:
        cond["lastTransitionTime"] = cur.get("lastTransitionTime")
    status["conditions"] = [c for c in conds if c.get("type") != cond["type"]] + [cond]


def new_dep_condition(ctype, status, reason, message):
    t = fmt_time()
    return {"type": ctype, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def get_condition(status, ctype):
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def remove_condition(status, ctype):
    if status.get("conditions"):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != ctype]
        if not status["conditions"]:
            del status["conditions"]


def replicas(obj):
    v = deep_get(obj, "spec", "replicas")
    return 1 if v is None else int(v)


def st(obj, field):
    return int(deep_get(obj, "status", field, default=0) or 0)


def rs_revision(rs):
    try:
        return int(deep_get(rs, "metadata", "annotations", REV, default="0") or 0)
    except ValueError:
        return 0


def compact_status(pairs):
    """Status dicts omit zero counts (omitempty), like the recordings show."""
    return {k: v for k, v in pairs if v not in (0, None, [], "")}


# ----------------------------------------------------------------------------------------------
# Deployment controller (pkg/controller/deployment, rolling + recreate, simplified)
# ----------------------------------------------------------------------------------------------


class DeploymentController:
    COMPONENT = "deployment-controller"

    def __init__(self, cluster):
        self.c = cluster
        # uid -> epoch seconds: Deployments this controller does not sync before then.
        self.held = {}

    def scale(self, seconds):
        return seconds * self.c.time_scale

    def tick(self):
        now = time.time()
        for d in self.c.objects(RT["deployments"]):
            if self.held.get(d["metadata"]["uid"], 0) > now:
                continue
            try:
                self.sync(d)
            except ApiError as e:
                log("deployment sync %s: %s" % (d["metadata"]["name"], e.message))

    def fresh(self, rt, obj):
        return self.c.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def rs_for(self, d):
        ns = d["metadata"]["namespace"]
        return [rs for rs in self.c.objects(RT["replicasets"], ns) if is_controlled_by(rs, d)]

    # ---- fenceposts ---------------------------------------------------------------------------
    def rolling(self, d):
        return deep_get(d, "spec", "strategy", "type", default="RollingUpdate") == "RollingUpdate"

    def fenceposts(self, d):
        ru = deep_get(d, "spec", "strategy", "rollingUpdate") or {}
        desired = replicas(d)
        surge = int_or_percent(ru.get("maxSurge", "25%"), desired, True)
        unavail = int_or_percent(ru.get("maxUnavailable", "25%"), desired, False)
        if surge == 0 and unavail == 0:
            unavail = 1
        return surge, unavail

    def max_surge(self, d):
        return self.fenceposts(d)[0] if self.rolling(d) else 0

    def max_unavailable(self, d):
        if not self.rolling(d) or replicas(d) == 0:
            return 0
        return min(self.fenceposts(d)[1], replicas(d))

    def has_deadline(self, d):
        v = deep_get(d, "spec", "progressDeadlineSeconds")
        return v is not None and v != 2147483647

    # ---- writes -------------------------------------------------------------------------------
    def update_status(self, d, status, annotations=None):
        new = copy.deepcopy(d)
        new["status"] = status
        if annotations is not None:
            if annotations:
                new["metadata"]["annotations"] = annotations
            else:
                new["metadata"].pop("annotations", None)
        return self.c.c_update(RT["deployments"], d, new, subresource="status")

    def update_rs(self, old, new):
        return self.c.c_update(RT["replicasets"], old, new)

    def set_replicas_annotations(self, rs, desired, max_reps):
        ann = rs["metadata"].setdefault("annotations", {})
        changed = False
        for k, v in ((DESIRED, str(desired)), (MAXREP, str(max_reps))):
            if ann.get(k) != v:
                ann[k] = v
                changed = True
        return changed

    def set_new_rs_annotations(self, d, rs, new_revision, exists):
        ann = rs["metadata"].setdefault("annotations", {})
        changed = False
        for k, v in (deep_get(d, "metadata", "annotations") or {}).items():
            if k in SKIP_COPY_ANNOTATIONS:
                continue
            if ann.get(k) != v:
                ann[k] = v
                changed = True
        old_rev = ann.get(REV, "")
        old_int = int(old_rev) if old_rev.isdigit() else 0
        new_int = int(new_revision)
        if old_int < new_int:
            ann[REV] = new_revision
            changed = True
            if old_rev:
                hist = ann.get(REV_HIST, "")
                ann[REV_HIST] = old_rev if not hist else hist + "," + old_rev
        if not exists:
            if self.set_replicas_annotations(rs, replicas(d), replicas(d) + self.max_surge(d)):
                changed = True
        return changed

    def scale_rs(self, rs, new_scale, d, operation=None):
        """scaleReplicaSet: spec.replicas + desired/max annotations, ScalingReplicaSet event."""
        new = copy.deepcopy(rs)
        size_changed = replicas(rs) != new_scale
        ann_changed = self.set_replicas_annotations(new, replicas(d),
                                                    replicas(d) + self.max_surge(d))
        if not (size_changed or ann_changed):
            return rs, False
        old_scale = replicas(rs)
        new["spec"]["replicas"] = new_scale
        saved = self.update_rs(rs, new)
        if size_changed:
            op = operation or ("up" if old_scale < new_scale else "down")
            self.c.recorder.emit(d, "Normal", "ScalingReplicaSet",
                                 "Scaled %s replica set %s to %d from %d" % (
                                     op, rs["metadata"]["name"], new_scale, old_scale),
                                 self.COMPONENT)
        return saved, size_changed

    # ---- new / old replica sets ---------------------------------------------------------------
    def find_new_rs(self, d, rs_list):
        for rs in sorted(rs_list, key=lambda r: (ctime(r), r["metadata"]["name"])):
            if equal_ignore_hash(deep_get(rs, "spec", "template"), deep_get(d, "spec", "template")):
                return rs
        return None

    def new_rs_new_replicas(self, d, all_rss, new_rs):
        if not self.rolling(d):
            return replicas(d)
        current = sum(replicas(r) for r in all_rss)
        max_total = replicas(d) + self.max_surge(d)
        if current >= max_total:
            return replicas(new_rs)
        scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
        return replicas(new_rs) + scale_up

    def get_all_rs_and_sync_revision(self, d, rs_list, create):
        new_rs = self.find_new_rs(d, rs_list)
        old_rss = [r for r in rs_list if new_rs is None or
                   r["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        new_rs = self.get_new_rs(d, rs_list, old_rss, new_rs, create)
        return new_rs, old_rss

    def get_new_rs(self, d, rs_list, old_rss, existing, create):
        max_old = max([rs_revision(r) for r in old_rss] or [0])
        new_revision = str(max_old + 1)
        d = self.fresh(RT["deployments"], d)
        if existing is not None:
            # Only metadata and top-level spec fields change here: avoid a full deep copy.
            rs_copy = dict(existing)
            rs_copy["metadata"] = copy.deepcopy(existing["metadata"])
            rs_copy["spec"] = dict(existing.get("spec") or {})
            ann_updated = self.set_new_rs_annotations(d, rs_copy, new_revision, True)
            mrs = deep_get(d, "spec", "minReadySeconds", default=0) or 0
            if ann_updated or (deep_get(rs_copy, "spec", "minReadySeconds", default=0) or 0) != mrs:
                if mrs:
                    rs_copy["spec"]["minReadySeconds"] = mrs
                else:
                    rs_copy["spec"].pop("minReadySeconds", None)
                return self.update_rs(existing, rs_copy)
            status = copy.deepcopy(d.get("status") or {})
            ann = dict(deep_get(d, "metadata", "annotations") or {})
            needs = False
            rev = deep_get(rs_copy, "metadata", "annotations", REV)
            if rev and ann.get(REV) != rev:
                ann[REV] = rev
                needs = True
            if self.has_deadline(d) and get_condition(status, "Progressing") is None:
                set_condition(status, new_dep_condition(
                    "Progressing", "True", "FoundNewReplicaSet",
                    'Found new replica set "%s"' % rs_copy["metadata"]["name"]))
                needs = True
            if needs:
                self.update_status(d, status, ann)
            return existing
        if not create:
            return None
        tmpl = copy.deepcopy(deep_get(d, "spec", "template"))
        collision = deep_get(d, "status", "collisionCount")
        h = template_hash(tmpl, collision)
        labels = dict(deep_get(tmpl, "metadata", "labels") or {})
        labels[HASH_LABEL] = h
        tmpl.setdefault("metadata", {})["labels"] = labels
        sel = copy.deepcopy(deep_get(d, "spec", "selector") or {})
        sel.setdefault("matchLabels", {})[HASH_LABEL] = h
        ns = d["metadata"]["namespace"]
        new_rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {"name": "%s-%s" % (d["metadata"]["name"], h), "namespace": ns,
                               "labels": dict(labels), "annotations": {},
                               "ownerReferences": [controller_ref(d)]},
                  "spec": {"replicas": 0, "selector": sel, "template": tmpl}}
        mrs = deep_get(d, "spec", "minReadySeconds", default=0) or 0
        if mrs:
            new_rs["spec"]["minReadySeconds"] = mrs
        count = self.new_rs_new_replicas(d, old_rss + [new_rs], new_rs)
        new_rs["spec"]["replicas"] = count
        self.set_new_rs_annotations(d, new_rs, new_revision, False)
        existing_same = self.c.get(RT["replicasets"], ns, new_rs["metadata"]["name"])
        if existing_same is not None:
            if is_controlled_by(existing_same, d) and equal_ignore_hash(
                    deep_get(existing_same, "spec", "template"), tmpl):
                return existing_same
            # Hash collision: bump collisionCount and retry on the next sync.
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount", 0)) + 1
            self.update_status(d, status)
            return None
        created = self.c.c_create(RT["replicasets"], ns, new_rs)
        if created is None:
            return None
        if count > 0:
            self.c.recorder.emit(d, "Normal", "ScalingReplicaSet",
                                 "Scaled up replica set %s to %d" % (
                                     created["metadata"]["name"], count), self.COMPONENT)
        d = self.fresh(RT["deployments"], d)
        status = copy.deepcopy(d.get("status") or {})
        ann = dict(deep_get(d, "metadata", "annotations") or {})
        needs = False
        if ann.get(REV) != new_revision:
            ann[REV] = new_revision
            needs = True
        if self.has_deadline(d):
            set_condition(status, new_dep_condition(
                "Progressing", "True", "NewReplicaSetCreated",
                'Created new replica set "%s"' % created["metadata"]["name"]))
            needs = True
        if needs:
            self.update_status(d, status, ann)
        return created

    # ---- status -------------------------------------------------------------------------------
    def calculate_status(self, all_rss, new_rs, d):
        available = sum(st(r, "availableReplicas") for r in all_rss)
        total = sum(replicas(r) for r in all_rss)
        unavailable = max(0, total - available)
        old = d.get("status") or {}
        status = compact_status([
            ("observedGeneration", d["metadata"].get("generation")),
            ("replicas", sum(st(r, "replicas") for r in all_rss)),
            ("updatedReplicas", st(new_rs, "replicas") if new_rs else 0),
            ("readyReplicas", sum(st(r, "readyReplicas") for r in all_rss)),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable),
        ])
        if old.get("conditions"):
            status["conditions"] = copy.deepcopy(old["conditions"])
        if old.get("collisionCount"):
            status["collisionCount"] = old["collisionCount"]
        if available >= replicas(d) - self.max_unavailable(d):
            set_condition(status, new_dep_condition("Available", "True", "MinimumReplicasAvailable",
                                                    "Deployment has minimum availability."))
        else:
            set_condition(status, new_dep_condition("Available", "False",
                                                    "MinimumReplicasUnavailable",
                                                    "Deployment does not have minimum availability."))
        return status

    def sync_status_only(self, all_rss, new_rs, d):
        d = self.fresh(RT["deployments"], d)
        status = self.calculate_status(all_rss, new_rs, d)
        if canon(status) != canon(d.get("status") or {}):
            self.update_status(d, status)

    def complete(self, d, status):
        r = replicas(d)
        return (status.get("updatedReplicas", 0) == r and status.get("replicas", 0) == r and
                status.get("availableReplicas", 0) == r and
                status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0))

    def progressing(self, d, new):
        old = d.get("status") or {}
        old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
        new_old = new.get("replicas", 0) - new.get("updatedReplicas", 0)
        return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or
                new_old < old_old or
                new.get("readyReplicas", 0) > old.get("readyReplicas", 0) or
                new.get("availableReplicas", 0) > old.get("availableReplicas", 0))

    def timed_out(self, d, status):
        if not self.has_deadline(d):
            return False
        cond = get_condition(status, "Progressing")
        if cond is None or cond.get("reason") == "NewReplicaSetAvailable":
            return False
        if cond.get("reason") == "ProgressDeadlineExceeded":
            return True
        frm = parse_time(cond.get("lastUpdateTime"))
        if frm is None:
            return False
        deadline = self.scale(int(deep_get(d, "spec", "progressDeadlineSeconds")))
        return frm + deadline < time.time()

    def sync_rollout_status(self, all_rss, new_rs, d):
        d = self.fresh(RT["deployments"], d)
        if new_rs is not None:
            new_rs = self.fresh(RT["replicasets"], new_rs) or new_rs
        all_rss = [self.fresh(RT["replicasets"], r) or r for r in all_rss if r is not None]
        status = self.calculate_status(all_rss, new_rs, d)
        if not self.has_deadline(d):
            remove_condition(status, "Progressing")
        cur = get_condition(d.get("status"), "Progressing")
        is_complete = (status.get("replicas", 0) == status.get("updatedReplicas", 0) and
                       cur is not None and cur.get("reason") == "NewReplicaSetAvailable")
        if self.has_deadline(d) and not is_complete:
            name = new_rs["metadata"]["name"] if new_rs else None
            if self.complete(d, status):
                msg = ('ReplicaSet "%s" has successfully progressed.' % name if name else
                       'Deployment "%s" has successfully progressed.' % d["metadata"]["name"])
                set_condition(status, new_dep_condition("Progressing", "True",
                                                        "NewReplicaSetAvailable", msg))
            elif self.progressing(d, status):
                msg = ('ReplicaSet "%s" is progressing.' % name if name else
                       'Deployment "%s" is progressing.' % d["metadata"]["name"])
                cond = new_dep_condition("Progressing", "True", "ReplicaSetUpdated", msg)
                if cur is not None:
                    if cur.get("status") == "True":
                        cond["lastTransitionTime"] = cur.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, cond)
            elif self.timed_out(d, status):
                msg = ('ReplicaSet "%s" has timed out progressing.' % name if name else
                       'Deployment "%s" has timed out progressing.' % d["metadata"]["name"])
                set_condition(status, new_dep_condition("Progressing", "False",
                                                        "ProgressDeadlineExceeded", msg))
        if canon(status) != canon(d.get("status") or {}):
            self.update_status(d, status)
            self.hold_if_stale(d, status)

    def hold_if_stale(self, d, status):
        """--stale-status-hold: after the first status of a new generation that still carries the
        previous rollout's ProgressDeadlineExceeded (recording 12: a rollback to an existing
        ReplicaSet with 1 replica), leave the Deployment alone for a while, as a throttled
        kube-controller-manager did for 1.25 s in web-one-1."""
        hold = self.scale(self.c.stale_status_hold)
        cond = get_condition(status, "Progressing") or {}
        gen = d["metadata"].get("generation", 0)
        if hold > 0 and cond.get("reason") == "ProgressDeadlineExceeded" and \
                status.get("observedGeneration") == gen and \
                (d.get("status") or {}).get("observedGeneration", 0) < gen:
            self.held[d["metadata"]["uid"]] = time.time() + hold

    # ---- strategies -------------------------------------------------------------------------
    def sync(self, d):
        if deleting(d):
            return
        rs_list = self.rs_for(d)
        self.check_paused_conditions(d)
        d = self.fresh(RT["deployments"], d)
        if deep_get(d, "spec", "paused"):
            self.sync_scale(d, rs_list, paused=True)
            return
        if self.is_scaling_event(d, rs_list):
            self.sync_scale(d, self.rs_for(d))
            return
        rs_list = self.rs_for(d)
        if self.rolling(d):
            self.rollout_rolling(self.fresh(RT["deployments"], d), rs_list)
        else:
            self.rollout_recreate(self.fresh(RT["deployments"], d), rs_list)

    def check_paused_conditions(self, d):
        if not self.has_deadline(d):
            return
        cond = get_condition(d.get("status"), "Progressing")
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            return
        paused_exists = cond is not None and cond.get("reason") == "DeploymentPaused"
        status = copy.deepcopy(d.get("status") or {})
        if deep_get(d, "spec", "paused") and not paused_exists:
            set_condition(status, new_dep_condition("Progressing", "Unknown", "DeploymentPaused",
                                                    "Deployment is paused"))
        elif not deep_get(d, "spec", "paused") and paused_exists:
            set_condition(status, new_dep_condition("Progressing", "Unknown", "DeploymentResumed",
                                                    "Deployment is resumed"))
        else:
            return
        self.update_status(d, status)

    def is_scaling_event(self, d, rs_list):
        new_rs, old_rss = self.get_all_rs_and_sync_revision(d, rs_list, False)
        d = self.fresh(RT["deployments"], d)
        for rs in [r for r in old_rss + [new_rs] if r is not None and replicas(r) > 0]:
            rs = self.fresh(RT["replicasets"], rs) or rs
            desired = deep_get(rs, "metadata", "annotations", DESIRED)
            if desired is None:
                continue
            if int(desired) != replicas(d):
                return True
        return False

    def sync_scale(self, d, rs_list, paused=False):
        new_rs, old_rss = self.get_all_rs_and_sync_revision(d, rs_list, False)
        d = self.fresh(RT["deployments"], d)
        self.scale_deployment(d, new_rs, old_rss)
        if paused:
            self.cleanup(d, old_rss)
        rs_list = self.rs_for(d)
        new_rs = self.find_new_rs(d, rs_list)
        self.sync_status_only(rs_list, new_rs, d)

    def scale_deployment(self, d, new_rs, old_rss):
        old_sorted = sorted(old_rss, key=lambda r: (ctime(r), r["metadata"]["name"]),
                            reverse=True)
        active = [r for r in old_sorted + [new_rs] if r is not None and replicas(r) > 0]
        if new_rs is not None or old_rss:
            aol = None
            if len(active) == 0:
                aol = new_rs if new_rs is not None else old_sorted[0]
            elif len(active) == 1:
                aol = active[0]
            if aol is not None:
                if replicas(aol) != replicas(d):
                    self.scale_rs(aol, replicas(d), d)
                return
        if new_rs is not None and replicas(new_rs) == replicas(d) and \
                deep_get(new_rs, "metadata", "annotations", DESIRED) == str(replicas(d)) and \
                st(new_rs, "availableReplicas") == replicas(d):
            for r in old_rss:
                if replicas(r) > 0:
                    self.scale_rs(r, 0, d)
            return
        if not self.rolling(d):
            return
        all_rss = active
        total = sum(replicas(r) for r in all_rss)
        allowed = replicas(d) + self.max_surge(d) if replicas(d) > 0 else 0
        to_add = allowed - total
        if to_add > 0:
            all_rss.sort(key=lambda r: (-replicas(r), [-ord(ch) for ch in ctime(r)]))
        elif to_add < 0:
            all_rss.sort(key=lambda r: (-replicas(r), ctime(r)))
        added = 0
        sizes = {}
        for rs in all_rss:
            if to_add != 0:
                prop = self.proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = replicas(rs) + prop
                added += prop
            else:
                sizes[rs["metadata"]["name"]] = replicas(rs)
        for i, rs in enumerate(all_rss):
            n = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[n] = max(0, sizes[n] + to_add - added)
            self.scale_rs(rs, sizes[n], d)

    def proportion(self, rs, d, to_add, added):
        if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        if replicas(d) == 0:
            frac = -replicas(rs)
        else:
            dep_reps = replicas(d) + self.max_surge(d)
            ann = deep_get(rs, "metadata", "annotations", MAXREP)
            annotated = int(ann) if ann and ann.isdigit() else st(d, "replicas")
            if annotated == 0:
                return 0
            frac = int(round(replicas(rs) * dep_reps / float(annotated))) - replicas(rs)
        allowed = to_add - added
        return min(frac, allowed) if to_add > 0 else max(frac, allowed)

    def rollout_rolling(self, d, rs_list):
        new_rs, old_rss = self.get_all_rs_and_sync_revision(d, rs_list, True)
        if new_rs is None:
            return
        d = self.fresh(RT["deployments"], d)
        new_rs = self.fresh(RT["replicasets"], new_rs) or new_rs
        all_rss = old_rss + [new_rs]
        if self.reconcile_new_rs(all_rss, new_rs, d):
            self.sync_rollout_status(self.rs_for(d), self.find_new_rs(d, self.rs_for(d)), d)
            return
        rs_list = self.rs_for(d)
        new_rs = self.find_new_rs(d, rs_list)
        old_rss = [r for r in rs_list if r["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        if self.reconcile_old_rss(rs_list, old_rss, new_rs, d):
            self.sync_rollout_status(self.rs_for(d), new_rs, d)
            return
        if self.complete(d, d.get("status") or {}):
            self.cleanup(d, old_rss)
        self.sync_rollout_status(self.rs_for(d), new_rs, d)

    def reconcile_new_rs(self, all_rss, new_rs, d):
        if replicas(new_rs) == replicas(d):
            return False
        if replicas(new_rs) > replicas(d):
            return self.scale_rs(new_rs, replicas(d), d, "down")[1]
        count = self.new_rs_new_replicas(d, all_rss, new_rs)
        return self.scale_rs(new_rs, count, d, "up")[1]

    def reconcile_old_rss(self, all_rss, old_rss, new_rs, d):
        old_pods = sum(replicas(r) for r in old_rss)
        if old_pods == 0:
            return False
        all_pods = sum(replicas(r) for r in all_rss)
        min_available = replicas(d) - self.max_unavailable(d)
        new_unavailable = replicas(new_rs) - st(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # cleanupUnhealthyReplicas
        total_down = 0
        for rs in sorted(old_rss, key=lambda r: (ctime(r), r["metadata"]["name"])):
            if total_down >= max_scaled_down:
                break
            if replicas(rs) == 0 or replicas(rs) == st(rs, "availableReplicas"):
                continue
            n = min(max_scaled_down - total_down, replicas(rs) - st(rs, "availableReplicas"))
            self.scale_rs(rs, replicas(rs) - n, d)
            total_down += n
        rs_list = self.rs_for(d)
        old_rss = [r for r in rs_list if r["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        # scaleDownOldReplicaSetsForRollingUpdate
        available = sum(st(r, "availableReplicas") for r in rs_list)
        scaled = 0
        if available > min_available:
            to_scale = available - min_available
            for rs in sorted(old_rss, key=lambda r: (ctime(r), r["metadata"]["name"])):
                if scaled >= to_scale:
                    break
                if replicas(rs) == 0:
                    continue
                n = min(replicas(rs), to_scale - scaled)
                self.scale_rs(rs, replicas(rs) - n, d)
                scaled += n
        return total_down + scaled > 0

    def rollout_recreate(self, d, rs_list):
        new_rs, old_rss = self.get_all_rs_and_sync_revision(d, rs_list, False)
        d = self.fresh(RT["deployments"], d)
        scaled = False
        for rs in old_rss:
            if replicas(rs) > 0:
                self.scale_rs(rs, 0, d)
                scaled = True
        if scaled:
            self.sync_rollout_status(self.rs_for(d), new_rs, d)
            return
        ns = d["metadata"]["namespace"]
        for rs in old_rss:
            for p in self.c.objects(RT["pods"], ns):
                if is_controlled_by(p, rs) and deep_get(p, "status", "phase") not in (
                        "Succeeded", "Failed"):
                    self.sync_rollout_status(self.rs_for(d), new_rs, d)
                    return
        if new_rs is None:
            new_rs, old_rss = self.get_all_rs_and_sync_revision(d, self.rs_for(d), True)
            if new_rs is None:
                return
        new_rs = self.fresh(RT["replicasets"], new_rs) or new_rs
        self.scale_rs(new_rs, replicas(d), d)
        d = self.fresh(RT["deployments"], d)
        if self.complete(d, d.get("status") or {}):
            self.cleanup(d, old_rss)
        self.sync_rollout_status(self.rs_for(d), self.find_new_rs(d, self.rs_for(d)), d)

    def cleanup(self, d, old_rss):
        limit = deep_get(d, "spec", "revisionHistoryLimit")
        if limit is None:
            return
        alive = [self.fresh(RT["replicasets"], r) for r in old_rss]
        alive = [r for r in alive if r is not None and not deleting(r)]
        diff = len(alive) - int(limit)
        if diff <= 0:
            return
        alive.sort(key=lambda r: (rs_revision(r), ctime(r)))
        for rs in alive[:diff]:
            if st(rs, "replicas") != 0 or replicas(rs) != 0 or \
                    rs["metadata"].get("generation", 0) > st(rs, "observedGeneration"):
                continue
            try:
                self.c.delete(RT["replicasets"], rs["metadata"]["namespace"],
                              rs["metadata"]["name"])
            except ApiError:
                pass


# ----------------------------------------------------------------------------------------------
# ReplicaSet controller
# ----------------------------------------------------------------------------------------------


class ReplicaSetController:
    COMPONENT = "replicaset-controller"

    def __init__(self, cluster, kubelet):
        self.c = cluster
        self.kubelet = kubelet

    def tick(self):
        for rs in self.c.objects(RT["replicasets"]):
            self.sync(rs)

    def owned_pods(self, owner):
        return [p for p in self.c.objects(RT["pods"], owner["metadata"]["namespace"])
                if is_controlled_by(p, owner)]

    def new_pod(self, owner, template, name=None, extra_labels=None):
        md = deep_get(template, "metadata") or {}
        labels = dict(md.get("labels") or {})
        labels.update(extra_labels or {})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"namespace": owner["metadata"]["namespace"], "labels": labels,
                            "ownerReferences": [controller_ref(owner)]},
               "spec": copy.deepcopy(deep_get(template, "spec") or {})}
        if name:
            pod["metadata"]["name"] = name
        else:
            pod["metadata"]["generateName"] = owner["metadata"]["name"] + "-"
        if md.get("annotations"):
            pod["metadata"]["annotations"] = dict(md["annotations"])
        created = self.c.c_create(RT["pods"], owner["metadata"]["namespace"], pod)
        if created is not None:
            self.c.recorder.emit(owner, "Normal", "SuccessfulCreate",
                                 "Created pod: %s" % created["metadata"]["name"],
                                 self.COMPONENT if owner["kind"] == "ReplicaSet" else
                                 owner["kind"].lower() + "-controller")
        return created

    def delete_rank(self, p):
        """ActivePodsWithRanks ordering: the first pods are deleted first."""
        phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(
            deep_get(p, "status", "phase"), 2)
        restarts = sum(int(cs.get("restartCount", 0)) for cs in
                       deep_get(p, "status", "containerStatuses", default=[]) or [])
        ready_since = self.kubelet.ready_since(p) or 0
        return (1 if deep_get(p, "spec", "nodeName") else 0, phase_rank,
                1 if pod_ready(p) else 0, -ready_since, -restarts,
                [-ord(ch) for ch in ctime(p)])

    def sync(self, rs):
        if deleting(rs):
            return
        c = self.c
        pods = self.owned_pods(rs)
        active = [p for p in pods if not deleting(p) and
                  deep_get(p, "status", "phase") not in ("Succeeded", "Failed")]
        diff = len(active) - replicas(rs)
        if diff < 0:
            for _ in range(min(-diff, 500)):
                self.new_pod(rs, deep_get(rs, "spec", "template"))
        elif diff > 0:
            for p in sorted(active, key=self.delete_rank)[:diff]:
                c.delete_pod(p)
                c.recorder.emit(rs, "Normal", "SuccessfulDelete",
                                "Deleted pod: %s" % p["metadata"]["name"], self.COMPONENT)
        rs = c.get(RT["replicasets"], rs["metadata"]["namespace"], rs["metadata"]["name"])
        pods = [p for p in self.owned_pods(rs) if not deleting(p) and
                deep_get(p, "status", "phase") not in ("Succeeded", "Failed")]
        tlabels = deep_get(rs, "spec", "template", "metadata", "labels") or {}
        mrs = self.c.time_scale * (deep_get(rs, "spec", "minReadySeconds", default=0) or 0)
        status = {"replicas": len(pods)}
        status.update(compact_status([
            ("fullyLabeledReplicas", sum(1 for p in pods if all(
                deep_get(p, "metadata", "labels", k) == v for k, v in tlabels.items()))),
            ("readyReplicas", sum(1 for p in pods if pod_ready(p))),
            ("availableReplicas", sum(1 for p in pods if self.kubelet.available(p, mrs))),
            ("observedGeneration", rs["metadata"].get("generation")),
        ]))
        if canon(status) != canon(rs.get("status") or {}):
            new = copy.deepcopy(rs)
            new["status"] = status
            c.c_update(RT["replicasets"], rs, new, subresource="status")


# ----------------------------------------------------------------------------------------------
# Simulated scheduler + kubelet (one node).  The image marker decides each container's fate.
# ----------------------------------------------------------------------------------------------

MARKERS = ("crashloop", "imagepull", "notready", "slowstart", "oomkill")


def image_marker(image):
    for m in MARKERS:
        if m in (image or ""):
            return m
    return None


def pod_requests(pod):
    cpu = mem = 0.0
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        req = deep_get(c, "resources", "requests") or deep_get(c, "resources", "limits") or {}
        cpu += parse_quantity(req.get("cpu"))
        mem += parse_quantity(req.get("memory"))
    for c in spec.get("initContainers") or []:
        req = deep_get(c, "resources", "requests") or {}
        cpu = max(cpu, parse_quantity(req.get("cpu")))
        mem = max(mem, parse_quantity(req.get("memory")))
    return cpu, mem


class Kubelet:
    """Scheduler (binding) and kubelet (container states, pod status, events) for fake-node-1."""

    BIND_DELAY = 0.05
    START_DELAY = 0.25
    KILL_DELAY = 0.3
    RESTART_EVERY = 10.0
    PULL_CYCLE = 10.0
    PULL_ERR_FOR = 2.0
    SLOWSTART = 20.0
    UNHEALTHY_EVERY = 10.0

    def __init__(self, cluster):
        self.c = cluster
        self.state = {}

    def s(self, seconds):
        return seconds * self.c.time_scale

    def ready_since(self, pod):
        st = self.state.get(deep_get(pod, "metadata", "uid"))
        if st and st.get("ready_at"):
            return st["ready_at"]
        cond = pod_condition(pod, "Ready")
        if cond and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
        return None

    def available(self, pod, min_ready):
        if not pod_ready(pod):
            return False
        if min_ready <= 0:
            return True
        since = self.ready_since(pod)
        return since is not None and time.time() - since >= min_ready

    def event(self, pod, etype, reason, msg, container=None):
        self.c.recorder.emit(pod, etype, reason, msg, "kubelet", host=NODE_NAME,
                             field_path="spec.containers{%s}" % container if container else None)

    def tick(self):
        now = time.time()
        live = set()
        for pod in self.c.objects(RT["pods"]):
            uid = pod["metadata"]["uid"]
            live.add(uid)
            st = self.state.setdefault(uid, {"seen": now})
            try:
                if deleting(pod):
                    self.terminate(pod, st, now)
                elif not deep_get(pod, "spec", "nodeName"):
                    self.schedule(pod, st, now)
                else:
                    st.setdefault("bound", now)
                    self.run(pod, st, now)
            except ApiError as e:
                log("kubelet %s: %s" % (pod["metadata"]["name"], e.message))
        for uid in list(self.state):
            if uid not in live:
                del self.state[uid]

    # ---- scheduler ----------------------------------------------------------------------------
    def unschedulable_reason(self, pod):
        sel = deep_get(pod, "spec", "nodeSelector") or {}
        if any(NODE_LABELS.get(k) != v for k, v in sel.items()):
            return ("1 node(s) didn't match Pod's node affinity/selector",
                    "1 Preemption is not helpful for scheduling")
        cpu, mem = pod_requests(pod)
        used_cpu = used_mem = 0.0
        count = 0
        for p in self.c.objects(RT["pods"]):
            if deep_get(p, "spec", "nodeName") == NODE_NAME and \
                    deep_get(p, "status", "phase") not in ("Succeeded", "Failed"):
                c2, m2 = pod_requests(p)
                used_cpu += c2
                used_mem += m2
                count += 1
        if cpu + used_cpu > parse_quantity(NODE_CAPACITY["cpu"]):
            return ("1 Insufficient cpu", "1 No preemption victims found for incoming pod")
        if mem + used_mem > parse_quantity(NODE_CAPACITY["memory"]):
            return ("1 Insufficient memory", "1 No preemption victims found for incoming pod")
        if count >= int(NODE_CAPACITY["pods"]):
            return ("1 Too many pods", "1 No preemption victims found for incoming pod")
        return None

    def schedule(self, pod, st, now):
        if now - st["seen"] < self.s(self.BIND_DELAY):
            return
        reason = self.unschedulable_reason(pod)
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        if reason is None:
            new["spec"]["nodeName"] = NODE_NAME
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": fmt_time()})
            status["conditions"] = conds
            self.c.c_update(RT["pods"], pod, new, "kube-scheduler", raw=True)
            st["bound"] = now
            self.c.recorder.emit(pod, "Normal", "Scheduled", "Successfully assigned %s/%s to %s" % (
                pod["metadata"]["namespace"], pod["metadata"]["name"], NODE_NAME),
                "default-scheduler")
            return
        msg = "0/1 nodes are available: %s. preemption: 0/1 nodes are available: %s.." % reason
        old_cond = pod_condition(pod, "PodScheduled")
        if old_cond and old_cond.get("message") == msg:
            return
        conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                      "lastTransitionTime": fmt_time(), "reason": "Unschedulable",
                      "message": msg})
        status["conditions"] = conds
        self.c.c_update(RT["pods"], pod, new, "kube-scheduler", subresource="status")
        self.c.recorder.emit(pod, "Warning", "FailedScheduling", msg, "default-scheduler")

    # ---- kubelet ------------------------------------------------------------------------------
    def terminate(self, pod, st, now):
        if not deep_get(pod, "spec", "nodeName"):
            return
        if "killing" not in st:
            st["killing"] = now
            for c in deep_get(pod, "spec", "containers", default=[]) or []:
                self.event(pod, "Normal", "Killing", "Stopping container %s" % c.get("name"),
                           c.get("name"))
            return
        grace = deep_get(pod, "metadata", "deletionGracePeriodSeconds", default=30) or 0
        if now - st["killing"] >= min(self.s(self.KILL_DELAY), grace):
            self.c.finish_pod_deletion(pod)

    def container_id(self):
        return "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex

    def start_container(self, pod, c, now, once=False):
        image = c.get("image", "")
        name = c.get("name")
        marker = image_marker(image)
        cs = {"name": name, "image": image, "marker": marker, "restarts": 0, "last": None,
              "cid": None, "started_at": None, "next": None, "pull": None}
        self.event(pod, "Normal", "Pulling", 'Pulling image "%s"' % image, name)
        if marker == "imagepull":
            cs["pull"] = "ErrImagePull"
            cs["next"] = now + self.s(self.PULL_ERR_FOR)
            self.event(pod, "Warning", "Failed",
                       'Failed to pull image "%s": rpc error: code = NotFound desc = failed to pull '
                       'and unpack image "%s": failed to resolve reference "%s": %s: not found'
                       % (image, image, image, image), name)
            self.event(pod, "Warning", "Failed", "Error: ErrImagePull", name)
            return cs
        self.event(pod, "Normal", "Pulled", 'Successfully pulled image "%s" in 1.021s (1.021s '
                   "including waiting)" % image, name)
        self.event(pod, "Normal", "Created", "Created container %s" % name, name)
        self.event(pod, "Normal", "Started", "Started container %s" % name, name)
        cs["cid"] = self.container_id()
        cs["started_at"] = now
        if marker in ("crashloop", "oomkill") and not once:
            self.crash(pod, cs, now, first=True)
        elif marker == "notready":
            cs["next"] = now + self.s(1.0)
        return cs

    def crash(self, pod, cs, now, first=False):
        oom = cs["marker"] == "oomkill"
        cs["restarts"] += 1
        cs["last"] = {"exitCode": 137 if oom else 1, "reason": "OOMKilled" if oom else "Error",
                      "startedAt": fmt_time(now), "finishedAt": fmt_time(now),
                      "containerID": cs["cid"]}
        cs["next"] = now + self.s(self.RESTART_EVERY)
        if not first:
            self.event(pod, "Normal", "Pulled",
                       'Container image "%s" already present on machine' % cs["image"], cs["name"])
            self.event(pod, "Normal", "Created", "Created container %s" % cs["name"], cs["name"])
            self.event(pod, "Normal", "Started", "Started container %s" % cs["name"], cs["name"])
        self.event(pod, "Warning", "BackOff", "Back-off restarting failed container %s in pod "
                   "%s_%s(%s)" % (cs["name"], pod["metadata"]["name"],
                                  pod["metadata"]["namespace"], pod["metadata"]["uid"]),
                   cs["name"])

    def advance(self, pod, cs, now):
        m = cs["marker"]
        if cs["next"] is None or now < cs["next"]:
            return
        if m in ("crashloop", "oomkill"):
            self.crash(pod, cs, now)
        elif m == "imagepull":
            if cs["pull"] == "ErrImagePull":
                cs["pull"] = "ImagePullBackOff"
                cs["next"] = now + self.s(self.PULL_CYCLE - self.PULL_ERR_FOR)
                self.event(pod, "Normal", "BackOff", 'Back-off pulling image "%s"' % cs["image"],
                           cs["name"])
                self.event(pod, "Warning", "Failed", "Error: ImagePullBackOff", cs["name"])
            else:
                cs["pull"] = "ErrImagePull"
                cs["next"] = now + self.s(self.PULL_ERR_FOR)
                self.event(pod, "Normal", "Pulling", 'Pulling image "%s"' % cs["image"],
                           cs["name"])
                self.event(pod, "Warning", "Failed",
                           'Failed to pull image "%s": rpc error: code = NotFound desc = failed to '
                           'pull and unpack image "%s": failed to resolve reference "%s": %s: not '
                           "found" % (cs["image"], cs["image"], cs["image"], cs["image"]),
                           cs["name"])
                self.event(pod, "Warning", "Failed", "Error: ErrImagePull", cs["name"])
        elif m == "notready":
            cs["next"] = now + self.s(self.UNHEALTHY_EVERY)
            self.event(pod, "Warning", "Unhealthy",
                       "Readiness probe failed: HTTP probe failed with statuscode: 503", cs["name"])

    def container_ready(self, cs, now):
        m = cs["marker"]
        if cs["started_at"] is None or m in ("crashloop", "oomkill", "imagepull", "notready"):
            return False
        if m == "slowstart":
            return now - cs["started_at"] >= self.s(self.SLOWSTART)
        return True

    def container_status(self, pod, cs, now):
        ready = self.container_ready(cs, now)
        out = {"name": cs["name"]}
        if cs["marker"] == "imagepull":
            msg = ('failed to pull and unpack image "%s": failed to resolve reference "%s": %s: '
                   "not found" % (cs["image"], cs["image"], cs["image"])
                   if cs["pull"] == "ErrImagePull" else 'Back-off pulling image "%s"' % cs["image"])
            out["state"] = {"waiting": {"reason": cs["pull"], "message": msg}}
        elif cs["marker"] in ("crashloop", "oomkill"):
            out["state"] = {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off restarting failed container %s in pod %s_%s(%s)" % (
                    cs["name"], pod["metadata"]["name"], pod["metadata"]["namespace"],
                    pod["metadata"]["uid"])}}
        else:
            out["state"] = {"running": {"startedAt": fmt_time(cs["started_at"])}}
        out["lastState"] = {"terminated": dict(cs["last"])} if cs["last"] else {}
        out["ready"] = ready
        out["restartCount"] = cs["restarts"]
        out["image"] = cs["image"]
        out["imageID"] = "" if cs["marker"] == "imagepull" else "%s@sha256:%s" % (
            cs["image"].split("@")[0].rsplit(":", 1)[0] if ":" in cs["image"].rsplit("/", 1)[-1]
            else cs["image"], hashlib.sha256(cs["image"].encode()).hexdigest())
        if cs["cid"]:
            out["containerID"] = cs["cid"]
        out["started"] = cs["marker"] not in ("crashloop", "oomkill", "imagepull")
        return out

    def run(self, pod, st, now):
        spec = pod.get("spec") or {}
        if spec.get("restartPolicy") in ("Never", "OnFailure"):
            return self.run_to_completion(pod, st, now)
        if "started" not in st:
            if now - st["bound"] < self.s(self.START_DELAY):
                return
            st["started"] = now
            st["ip"] = self.c.alloc_pod_ip()
            st["ltt"] = {}
            st["cs"] = [self.start_container(pod, c, now) for c in spec.get("containers") or []]
        else:
            # Nothing can change before the next timer unless someone rewrote the pod.
            if st.get("rv") == pod["metadata"]["resourceVersion"] and now < st.get("wake", 0):
                return
            for cs in st["cs"]:
                self.advance(pod, cs, now)
        wake = [now + 5.0]
        for cs in st["cs"]:
            if cs["next"]:
                wake.append(cs["next"])
            if cs["marker"] == "slowstart" and cs["started_at"]:
                wake.append(cs["started_at"] + self.s(self.SLOWSTART))
        st["wake"] = min(w for w in wake if w > now - 0.001)
        statuses = [self.container_status(pod, cs, now) for cs in st["cs"]]
        unready = [s["name"] for s in statuses if not s["ready"]]
        all_ready = not unready
        if all_ready:
            st.setdefault("ready_at", now)
        else:
            st.pop("ready_at", None)
        never_ran = any(cs["started_at"] is None for cs in st["cs"])
        phase = "Pending" if never_ran else "Running"

        def cond(ctype, ok, reason=None, message=None):
            prev = st["ltt"].get(ctype)
            if prev is None or prev[0] != ok:
                st["ltt"][ctype] = (ok, fmt_time(now))
            c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
                 "lastTransitionTime": st["ltt"][ctype][1]}
            if not ok and reason:
                c["reason"] = reason
                c["message"] = message
            return c

        msg = "containers with unready status: [%s]" % " ".join(unready)
        sched = pod_condition(pod, "PodScheduled") or {
            "type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": fmt_time(st["started"])}
        conditions = [cond("Initialized", True), cond("Ready", all_ready, "ContainersNotReady", msg),
                      cond("ContainersReady", all_ready, "ContainersNotReady", msg), sched]
        status = {"phase": phase, "conditions": conditions, "hostIP": HOST_IP,
                  "podIP": st["ip"], "podIPs": [{"ip": st["ip"]}],
                  "startTime": fmt_time(st["started"])}
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [{
                "name": ic.get("name"), "state": {"terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": fmt_time(st["started"]),
                    "finishedAt": fmt_time(st["started"]), "containerID": self.container_id()}},
                "lastState": {}, "ready": True, "restartCount": 0, "image": ic.get("image"),
                "imageID": ic.get("image"), "started": False}
                for ic in spec["initContainers"]]
            old_init = deep_get(pod, "status", "initContainerStatuses")
            if old_init:
                status["initContainerStatuses"] = old_init
        status["containerStatuses"] = statuses
        status["qosClass"] = deep_get(pod, "status", "qosClass") or qos_class(spec)
        if canon(status) != canon(pod.get("status") or {}):
            new = copy.deepcopy(pod)
            new["status"] = status
            pod = self.c.c_update(RT["pods"], pod, new, "kubelet", subresource="status")
        st["rv"] = pod["metadata"]["resourceVersion"]


    # ---- run-to-completion pods (Jobs: restartPolicy Never / OnFailure) -----------------------
    # A container's program is its command when that is a shell script (`sh -c SCRIPT`):
    # `echo TEXT` writes a log line, `sleep N` waits N s (x time-scale), `exit N` ends it with
    # code N, the end of the script is exit 0; any other command exits 0 after 0.5 s; no command
    # (the image's own entrypoint) runs until stopped. Image markers still win: imagepull never
    # starts, crashloop exits 1, oomkill is killed with 137 OOMKilled.
    EXIT_AFTER = 0.5

    def program(self, c):
        cmd = c.get("command") or []
        if len(cmd) >= 3 and cmd[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and cmd[1] == "-c":
            return parse_script(cmd[2])
        if cmd:
            return [("sleep", self.EXIT_AFTER), ("exit", 0)]
        return None

    def start_once(self, pod, c, now):
        cs = self.start_container(pod, c, now, once=True)
        cs["logs"] = []
        cs["term"] = None
        if cs["marker"] == "imagepull":
            return cs
        self.begin(cs, c, now)
        return cs

    def begin(self, cs, c, now):
        cs["started_at"] = now
        cs["term"] = None
        if cs["marker"] == "crashloop":
            cs["steps"] = [("exit", 1)]
        elif cs["marker"] == "oomkill":
            cs["steps"] = [("oom", 137)]
        else:
            cs["steps"] = self.program(c)
        cs["next"] = now
        self.step(cs, now)

    def step(self, cs, now):
        """Run the program until it sleeps or ends."""
        while cs["steps"] is not None and cs["term"] is None and now >= (cs["next"] or 0):
            if not cs["steps"]:
                cs["steps"] = [("exit", 0)]
            op, arg = cs["steps"].pop(0)
            if op == "echo":
                cs["logs"].append(arg)
            elif op == "sleep":
                cs["next"] = now + self.s(arg)
            elif op in ("exit", "oom"):
                code = int(arg) & 0xFF
                cs["term"] = {"exitCode": code, "reason": "OOMKilled" if op == "oom" else (
                    "Completed" if code == 0 else "Error"), "startedAt": fmt_time(cs["started_at"]),
                    "finishedAt": fmt_time(now), "containerID": cs["cid"]}
                cs["next"] = None
        if cs["steps"] is None:
            cs["next"] = None  # the image's own process: runs until the pod is stopped

    def run_to_completion(self, pod, st, now):
        spec = pod.get("spec") or {}
        if deep_get(pod, "status", "phase") in ("Succeeded", "Failed"):
            return  # terminal: the kubelet never runs a finished pod again
        on_failure = spec.get("restartPolicy") == "OnFailure"
        containers = {c.get("name"): c for c in spec.get("containers") or []}
        if "started" not in st:
            if now - st["bound"] < self.s(self.START_DELAY):
                return
            st["started"] = now
            st["ip"] = self.c.alloc_pod_ip()
            st["ltt"] = {}
            st["cs"] = [self.start_once(pod, c, now) for c in spec.get("containers") or []]
        else:
            if st.get("rv") == pod["metadata"]["resourceVersion"] and now < st.get("wake", 0):
                return
            for cs in st["cs"]:
                if cs["marker"] == "imagepull":
                    self.advance(pod, cs, now)
                elif cs.get("backoff") and now >= cs["backoff"]:
                    # OnFailure: the kubelet restarts the failed container after its back-off.
                    cs["backoff"] = None
                    self.event(pod, "Normal", "Pulled", 'Container image "%s" already present '
                               "on machine" % cs["image"], cs["name"])
                    self.event(pod, "Normal", "Started", "Started container %s" % cs["name"],
                               cs["name"])
                    cs["cid"] = self.container_id()
                    self.begin(cs, containers.get(cs["name"]) or {}, now)
                elif cs["term"] is None and cs["started_at"] is not None:
                    self.step(cs, now)
        for cs in st["cs"]:
            t = cs["term"]
            if on_failure and t and t["exitCode"] != 0 and not cs.get("backoff"):
                cs["restarts"] += 1
                cs["last"] = t
                cs["term"] = None
                cs["backoff"] = now + self.s(self.RESTART_EVERY)
                self.event(pod, "Warning", "BackOff", "Back-off restarting failed container %s "
                           "in pod %s_%s(%s)" % (cs["name"], pod["metadata"]["name"],
                                                 pod["metadata"]["namespace"],
                                                 pod["metadata"]["uid"]), cs["name"])
        wake = [now + 5.0] + [w for cs in st["cs"] for w in (cs["next"], cs.get("backoff")) if w]
        st["wake"] = min(w for w in wake if w > now - 0.001)
        statuses = []
        for cs in st["cs"]:
            out = {"name": cs["name"]}
            if cs["marker"] == "imagepull":
                out = self.container_status(pod, cs, now)
                statuses.append(out)
                continue
            if cs["term"]:
                out["state"] = {"terminated": dict(cs["term"])}
            elif cs.get("backoff"):
                out["state"] = {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off 10s restarting failed container=%s pod=%s_%s(%s)" % (
                        cs["name"], pod["metadata"]["name"], pod["metadata"]["namespace"],
                        pod["metadata"]["uid"])}}
            else:
                out["state"] = {"running": {"startedAt": fmt_time(cs["started_at"])}}
            out["lastState"] = {"terminated": dict(cs["last"])} if cs["last"] else {}
            running = "running" in out["state"]
            out["ready"] = running and self.container_ready(cs, now)
            out["restartCount"] = cs["restarts"]
            out["image"] = cs["image"]
            out["imageID"] = "%s@sha256:%s" % (cs["image"].split("@")[0], hashlib.sha256(
                cs["image"].encode()).hexdigest())
            out["containerID"] = cs["cid"]
            out["started"] = running
            statuses.append(out)
        terms = [cs["term"] for cs in st["cs"]]
        if all(terms) and all(t["exitCode"] == 0 for t in terms):
            phase = "Succeeded"
        elif all(terms) and not on_failure:
            phase = "Failed"
        elif any(cs["started_at"] is None for cs in st["cs"]):
            phase = "Pending"
        else:
            phase = "Running"
        all_ready = bool(statuses) and all(x.get("ready") for x in statuses)

        def cond(ctype, ok, reason=None, message=None):
            prev = st["ltt"].get(ctype)
            if prev is None or prev[0] != ok:
                st["ltt"][ctype] = (ok, fmt_time(now))
            c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
                 "lastTransitionTime": st["ltt"][ctype][1]}
            if not ok and reason:
                c["reason"] = reason
                if message:
                    c["message"] = message
            return c

        if phase in ("Succeeded", "Failed"):
            # generateContainersReadyConditionForTerminalPhase (pkg/kubelet/status/generate.go).
            reason, msg = ("PodCompleted" if phase == "Succeeded" else "PodFailed"), None
        else:
            reason = "ContainersNotReady"
            msg = "containers with unready status: [%s]" % " ".join(
                x["name"] for x in statuses if not x.get("ready"))
        sched = pod_condition(pod, "PodScheduled") or {
            "type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": fmt_time(st["started"])}
        status = {"phase": phase, "conditions": [
            cond("Initialized", True), cond("Ready", all_ready, reason, msg),
            cond("ContainersReady", all_ready, reason, msg), sched],
            "hostIP": HOST_IP, "podIP": st["ip"], "podIPs": [{"ip": st["ip"]}],
            "startTime": fmt_time(st["started"]), "containerStatuses": statuses,
            "qosClass": deep_get(pod, "status", "qosClass") or qos_class(spec)}
        if canon(status) != canon(pod.get("status") or {}):
            new = copy.deepcopy(pod)
            new["status"] = status
            pod = self.c.c_update(RT["pods"], pod, new, "kubelet", subresource="status")
        st["rv"] = pod["metadata"]["resourceVersion"]

    def logs(self, pod, container):
        """The log lines of a container, or the kubelet's error text (validateContainerLogStatus
        in pkg/kubelet/kubelet_pods.go) when it has none yet."""
        name = pod["metadata"]["name"]
        st = self.state.get(pod["metadata"]["uid"]) or {}
        cs = next((x for x in st.get("cs") or [] if x["name"] == container), None)
        if cs is None:
            return None, 'container "%s" in pod "%s" is waiting to start: ContainerCreating' % (
                container, name)
        if cs["marker"] == "imagepull":
            return None, 'container "%s" in pod "%s" is waiting to start: %s' % (
                container, name, "image can't be pulled" if cs["pull"] == "ErrImagePull"
                else "trying and failing to pull image")
        return list(cs.get("logs") or []), None


def parse_script(script):
    """`echo` / `sleep` / `exit` statements of a shell script (separated by newlines, `;` or
    `&&`, quotes respected); other statements do nothing."""
    import shlex
    stmts, cur, quote, i = [], "", None, 0
    while i < len(script):
        ch = script[i]
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in ";\n" or script[i:i + 2] in ("&&", "||"):
            stmts.append(cur)
            cur = ""
            if ch in "&|":
                i += 1
        else:
            cur += ch
        i += 1
    stmts.append(cur)
    steps = []
    for stmt in stmts:
        try:
            words = shlex.split(stmt)
        except ValueError:
            continue
        if not words:
            continue
        if words[0] == "echo":
            args = words[1:]
            while args and args[0] in ("-n", "-e"):
                args = args[1:]
            steps.append(("echo", " ".join(args)))
        elif words[0] == "sleep" and len(words) > 1:
            try:
                steps.append(("sleep", float(words[1])))
            except ValueError:
                pass
        elif words[0] == "exit":
            try:
                steps.append(("exit", int(words[1]) if len(words) > 1 else 0))
            except ValueError:
                steps.append(("exit", 2))
            break
    return steps


def _finish_pod_deletion(self, pod):
    """Kubelet confirmed the containers are gone: grace 0, then the object disappears."""
    rt = RT["pods"]
    with self.lock:
        cur = self.get(rt, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if cur is None or cur["metadata"]["uid"] != pod["metadata"]["uid"]:
            return
        new = copy.deepcopy(cur)
        new["metadata"]["deletionTimestamp"] = fmt_time()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        if new["metadata"].get("finalizers"):
            self._commit(rt, new, "MODIFIED", cur)
            return
        mod = self._commit(rt, new, "MODIFIED", cur)
        self._commit(rt, copy.deepcopy(mod), "DELETED", mod)


Cluster.finish_pod_deletion = _finish_pod_deletion


# ----------------------------------------------------------------------------------------------
# StatefulSet and DaemonSet controllers (simplified, same pod behaviour)
# ----------------------------------------------------------------------------------------------


class StatefulSetController:
    COMPONENT = "statefulset-controller"

    def __init__(self, cluster, rsc):
        self.c = cluster
        self.rsc = rsc

    def tick(self):
        for sts in self.c.objects(RT["statefulsets"]):
            self.sync(sts)

    def sync(self, sts):
        if deleting(sts):
            return
        c = self.c
        name = sts["metadata"]["name"]
        ns = sts["metadata"]["namespace"]
        reps = replicas(sts)
        spec = sts.get("spec") or {}
        rev = "%s-%s" % (name, template_hash(spec.get("template")))
        parallel = spec.get("podManagementPolicy") == "Parallel"
        strategy = deep_get(spec, "updateStrategy", "type", default="RollingUpdate")
        partition = deep_get(spec, "updateStrategy", "rollingUpdate", "partition", default=0) or 0
        pods = {}
        for p in self.rsc.owned_pods(sts):
            m = re.match(r"^%s-(\d+)$" % re.escape(name), p["metadata"]["name"])
            if m:
                pods[int(m.group(1))] = p
        blocked = False
        for i in range(reps):
            p = pods.get(i)
            if p is None:
                tmpl = copy.deepcopy(spec.get("template") or {})
                tmpl.setdefault("spec", {})["hostname"] = "%s-%d" % (name, i)
                if spec.get("serviceName"):
                    tmpl["spec"]["subdomain"] = spec["serviceName"]
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": "%s-%d" % (name, i), "namespace": ns,
                    "labels": dict(deep_get(tmpl, "metadata", "labels") or {}),
                    "ownerReferences": [controller_ref(sts)]}, "spec": tmpl["spec"]}
                pod["metadata"]["labels"].update({
                    "controller-revision-hash": rev,
                    "statefulset.kubernetes.io/pod-name": "%s-%d" % (name, i),
                    "apps.kubernetes.io/pod-index": str(i)})
                if c.c_create(RT["pods"], ns, pod) is not None:
                    c.recorder.emit(sts, "Normal", "SuccessfulCreate",
                                    "create Pod %s-%d in StatefulSet %s successful" % (name, i,
                                                                                      name),
                                    self.COMPONENT)
                if not parallel:
                    blocked = True
                    break
                continue
            if deleting(p) or not pod_ready(p):
                if not parallel:
                    blocked = True
                    break
        if not blocked:
            extra = sorted([i for i in pods if i >= reps], reverse=True)
            for i in extra:
                if not deleting(pods[i]):
                    c.delete_pod(pods[i])
                    c.recorder.emit(sts, "Normal", "SuccessfulDelete",
                                    "delete Pod %s in StatefulSet %s successful" % (
                                        pods[i]["metadata"]["name"], name), self.COMPONENT)
                if not parallel:
                    break
            all_ok = all(i in pods and not deleting(pods[i]) and pod_ready(pods[i])
                         for i in range(reps)) and not extra
            if strategy == "RollingUpdate" and all_ok:
                for i in reversed(range(reps)):
                    if i < partition:
                        break
                    if deep_get(pods[i], "metadata", "labels", "controller-revision-hash") != rev:
                        c.delete_pod(pods[i])
                        c.recorder.emit(sts, "Normal", "SuccessfulDelete",
                                        "delete Pod %s in StatefulSet %s successful" % (
                                            pods[i]["metadata"]["name"], name), self.COMPONENT)
                        break
        sts = c.get(RT["statefulsets"], ns, name)
        cur_pods = [p for p in self.rsc.owned_pods(sts) if not deleting(p)]
        old_status = sts.get("status") or {}
        updated = [p for p in cur_pods
                   if deep_get(p, "metadata", "labels", "controller-revision-hash") == rev]
        current_rev = old_status.get("currentRevision") or rev
        if len(updated) == reps and all(pod_ready(p) for p in updated):
            current_rev = rev
        current = [p for p in cur_pods
                   if deep_get(p, "metadata", "labels", "controller-revision-hash") == current_rev]
        status = compact_status([("observedGeneration", sts["metadata"].get("generation"))])
        status["replicas"] = len(cur_pods)
        status.update(compact_status([
            ("readyReplicas", sum(1 for p in cur_pods if pod_ready(p))),
            ("currentReplicas", len(current)), ("updatedReplicas", len(updated))]))
        status["currentRevision"] = current_rev
        status["updateRevision"] = rev
        status["collisionCount"] = 0
        status["availableReplicas"] = sum(1 for p in cur_pods if self.rsc.kubelet.available(
            p, (spec.get("minReadySeconds") or 0) * c.time_scale))
        if canon(status) != canon(old_status):
            new = copy.deepcopy(sts)
            new["status"] = status
            c.c_update(RT["statefulsets"], sts, new, subresource="status")


class DaemonSetController:
    COMPONENT = "daemonset-controller"

    def __init__(self, cluster, rsc):
        self.c = cluster
        self.rsc = rsc

    def tick(self):
        for ds in self.c.objects(RT["daemonsets"]):
            self.sync(ds)

    def sync(self, ds):
        if deleting(ds):
            return
        c = self.c
        ns, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        spec = ds.get("spec") or {}
        tmpl = spec.get("template") or {}
        h = template_hash(tmpl)
        sel = deep_get(tmpl, "spec", "nodeSelector") or {}
        desired = 1 if all(NODE_LABELS.get(k) == v for k, v in sel.items()) else 0
        owned = self.rsc.owned_pods(ds)
        active = [p for p in owned if not deleting(p)]
        if desired and not owned:
            t2 = copy.deepcopy(tmpl)
            t2.setdefault("metadata", {}).setdefault("labels", {}).update({
                "controller-revision-hash": h,
                "pod-template-generation": deep_get(ds, "metadata", "annotations",
                                                    DS_TEMPLATE_GENERATION, default="1")})
            t2.setdefault("spec", {})["affinity"] = {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                    "matchFields": [{"key": "metadata.name", "operator": "In",
                                     "values": [NODE_NAME]}]}]}}}
            self.rsc.new_pod(ds, t2)
        elif not desired:
            for p in active:
                c.delete_pod(p)
        elif deep_get(spec, "updateStrategy", "type", default="RollingUpdate") == "RollingUpdate":
            if len(active) == len(owned):
                for p in active:
                    if deep_get(p, "metadata", "labels", "controller-revision-hash") != h:
                        c.delete_pod(p)
                        c.recorder.emit(ds, "Normal", "SuccessfulDelete",
                                        "Deleted pod: %s" % p["metadata"]["name"], self.COMPONENT)
                        break
        ds = c.get(RT["daemonsets"], ns, name)
        pods = [p for p in self.rsc.owned_pods(ds) if not deleting(p)]
        mrs = (spec.get("minReadySeconds") or 0) * c.time_scale
        available = sum(1 for p in pods if self.rsc.kubelet.available(p, mrs))
        status = {"currentNumberScheduled": len(pods), "numberMisscheduled": 0,
                  "desiredNumberScheduled": desired,
                  "numberReady": sum(1 for p in pods if pod_ready(p))}
        status.update(compact_status([
            ("observedGeneration", ds["metadata"].get("generation")),
            ("updatedNumberScheduled", sum(
                1 for p in pods if deep_get(p, "metadata", "labels",
                                            "controller-revision-hash") == h)),
            ("numberAvailable", available),
            ("numberUnavailable", max(0, desired - available))]))
        if canon(status) != canon(ds.get("status") or {}):
            new = copy.deepcopy(ds)
            new["status"] = status
            c.c_update(RT["daemonsets"], ds, new, subresource="status")


# ----------------------------------------------------------------------------------------------
# EndpointSlice + Endpoints controllers
# ----------------------------------------------------------------------------------------------


class EndpointsController:
    def __init__(self, cluster):
        self.c = cluster

    def tick(self):
        for svc in self.c.objects(RT["services"]):
            if deleting(svc) or not deep_get(svc, "spec", "selector"):
                continue
            ns = svc["metadata"]["namespace"]
            reqs = [(k, "=", [v]) for k, v in svc["spec"]["selector"].items()]
            pods = [p for p in self.c.objects(RT["pods"], ns)
                    if label_match(reqs, deep_get(p, "metadata", "labels"))
                    and deep_get(p, "status", "podIP")
                    and deep_get(p, "status", "phase") not in ("Succeeded", "Failed")]
            self.sync_slice(svc, pods)
            self.sync_endpoints(svc, pods)

    def resolve_ports(self, svc, pods):
        out = []
        for sp in deep_get(svc, "spec", "ports") or []:
            tp = sp.get("targetPort", sp.get("port"))
            port = None
            if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
                port = int(tp)
            else:
                for p in pods:
                    for c in deep_get(p, "spec", "containers", default=[]) or []:
                        for cp in c.get("ports") or []:
                            if cp.get("name") == tp and cp.get("protocol", "TCP") == sp.get(
                                    "protocol", "TCP"):
                                port = cp.get("containerPort")
                    if port is not None:
                        break
            if port is not None:
                out.append({"name": sp.get("name", ""), "protocol": sp.get("protocol", "TCP"),
                            "port": port})
        return out

    def sync_slice(self, svc, pods):
        c = self.c
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        mine = [s for s in c.objects(RT["endpointslices"], ns)
                if deep_get(s, "metadata", "labels", "kubernetes.io/service-name") == name
                and deep_get(s, "metadata", "labels",
                             "endpointslice.kubernetes.io/managed-by") ==
                "endpointslice-controller.k8s.io" and is_controlled_by(s, svc)]
        cur = mine[0] if mine else None
        for extra in mine[1:]:
            c.delete(RT["endpointslices"], ns, extra["metadata"]["name"])
        ports = self.resolve_ports(svc, pods)
        by_uid = {}
        for p in pods:
            term = deleting(p)
            ready = pod_ready(p)
            if deep_get(svc, "spec", "publishNotReadyAddresses"):
                ready = True
            ep = {"addresses": [p["status"]["podIP"]],
                  "conditions": {"ready": ready and not term, "serving": ready,
                                 "terminating": term},
                  "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                "uid": p["metadata"]["uid"]}}
            if deep_get(p, "spec", "nodeName"):
                ep["nodeName"] = p["spec"]["nodeName"]
            by_uid[p["metadata"]["uid"]] = ep
        endpoints = []
        for ep in (cur or {}).get("endpoints") or []:
            uid = deep_get(ep, "targetRef", "uid")
            if uid in by_uid:
                endpoints.append(by_uid.pop(uid))
        endpoints.extend(sorted(by_uid.values(), key=lambda e: e["targetRef"]["name"]))
        labels = dict(deep_get(svc, "metadata", "labels") or {})
        labels.update({"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": name})
        body = {"addressType": "IPv4", "endpoints": endpoints or None,
                "ports": ports if endpoints else None}
        if cur is None:
            obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"generateName": name + "-", "namespace": ns, "labels": labels,
                                "ownerReferences": [controller_ref(svc)]}}
            obj.update(body)
            c.c_create(RT["endpointslices"], ns, obj)
            return
        if all(canon(cur.get(k)) == canon(v) for k, v in body.items()) and \
                canon(deep_get(cur, "metadata", "labels")) == canon(labels):
            return
        new = copy.deepcopy(cur)
        new.update(body)
        new["metadata"]["labels"] = labels
        new["metadata"].setdefault("annotations", {})[
            "endpoints.kubernetes.io/last-change-trigger-time"] = fmt_time()
        c.c_update(RT["endpointslices"], cur, new)

    def sync_endpoints(self, svc, pods):
        c = self.c
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ready, not_ready = [], []
        for p in pods:
            if deleting(p) and not deep_get(svc, "spec", "publishNotReadyAddresses"):
                continue
            addr = {"ip": p["status"]["podIP"]}
            if deep_get(p, "spec", "nodeName"):
                addr["nodeName"] = p["spec"]["nodeName"]
            addr["targetRef"] = {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                 "uid": p["metadata"]["uid"]}
            if pod_ready(p) or deep_get(svc, "spec", "publishNotReadyAddresses"):
                ready.append(addr)
            else:
                not_ready.append(addr)
        ports = []
        for sp in self.resolve_ports(svc, pods):
            ep = {"port": sp["port"], "protocol": sp["protocol"]}
            if sp["name"]:
                ep = {"name": sp["name"], "port": sp["port"], "protocol": sp["protocol"]}
            ports.append(ep)
        subset = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
        if subset and ports:
            subset["ports"] = ports
        labels = dict(deep_get(svc, "metadata", "labels") or {})
        cur = c.get(RT["endpoints"], ns, name)
        body = {"subsets": [subset]} if subset else {}
        if cur is None:
            obj = {"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": name, "namespace": ns}}
            if labels:
                obj["metadata"]["labels"] = labels
            obj.update(body)
            c.c_create(RT["endpoints"], ns, obj)
            return
        if canon(cur.get("subsets")) == canon(body.get("subsets")) and \
                canon(deep_get(cur, "metadata", "labels") or {}) == canon(labels):
            return
        new = copy.deepcopy(cur)
        new.pop("subsets", None)
        new.update(body)
        if labels:
            new["metadata"]["labels"] = labels
        else:
            new["metadata"].pop("labels", None)
        c.c_update(RT["endpoints"], cur, new)


# ----------------------------------------------------------------------------------------------
# Garbage collector and namespace controller
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Job and TTL-after-finished controllers (v1.28 semantics, NonIndexed Jobs)
# ----------------------------------------------------------------------------------------------
# After pkg/controller/job/job_controller.go (syncJob, v1.28): pods `<job>-<5 chars>` from the
# template, controlled by the Job; succeeded/failed counted once per pod (the real controller
# tracks them with the batch.kubernetes.io/job-tracking finalizer and uncountedTerminatedPods;
# here the controller remembers what it counted, so the pods carry no finalizer); Failed when
# failed > backoffLimit (BackoffLimitExceeded; with OnFailure when container restarts reach it)
# or when active longer than activeDeadlineSeconds (DeadlineExceeded: active pods deleted and
# counted failed); Complete (no reason in 1.28) once succeeded >= completions. A failed pod is
# replaced after the controller's back-off (10 s doubling, capped at 6 min).


def job_condition(job, ctype):
    return next((c for c in deep_get(job, "status", "conditions", default=[]) or []
                 if c.get("type") == ctype and c.get("status") == "True"), None)


def job_finished(job):
    return job_condition(job, "Complete") or job_condition(job, "Failed")


class JobController:
    COMPONENT = "job-controller"
    BACKOFF = 10.0
    MAX_BACKOFF = 360.0

    def __init__(self, cluster, rsc):
        self.c = cluster
        self.rsc = rsc
        self.counted = {}  # job uid -> {pod uid: "succeeded" | "failed"}
        self.last_failure = {}  # job uid -> time of the last counted failure

    def tick(self):
        for job in self.c.objects(RT["jobs"]):
            self.sync(job)
        live = {j["metadata"]["uid"] for j in self.c.objects(RT["jobs"])}
        for uid in list(self.counted):
            if uid not in live:
                self.counted.pop(uid, None)
                self.last_failure.pop(uid, None)

    def sync(self, job):
        c = self.c
        if deleting(job) or job_finished(job):
            return
        spec = job.get("spec") or {}
        if spec.get("suspend"):
            return
        uid = job["metadata"]["uid"]
        now = time.time()
        pods = self.rsc.owned_pods(job)
        counted = self.counted.setdefault(uid, {})
        for p in pods:
            phase = deep_get(p, "status", "phase")
            pu = p["metadata"]["uid"]
            if phase in ("Succeeded", "Failed") and pu not in counted:
                counted[pu] = "succeeded" if phase == "Succeeded" else "failed"
                if phase == "Failed":
                    self.last_failure[uid] = now
        active = [p for p in pods if not deleting(p) and
                  deep_get(p, "status", "phase") not in ("Succeeded", "Failed")]
        status = copy.deepcopy(job.get("status") or {})
        start = status.get("startTime") or fmt_time(now)
        succeeded = sum(1 for v in counted.values() if v == "succeeded")
        failed = sum(1 for v in counted.values() if v == "failed")
        backoff_limit = int(spec.get("backoffLimit", 6))
        completions = int(spec.get("completions", 1) or 1)
        finished = None
        if failed > backoff_limit or self.past_backoff_on_failure(spec, active, backoff_limit):
            finished = ("Failed", "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit")
        elif spec.get("activeDeadlineSeconds") is not None and now - (
                parse_time(start) or now) >= self.c.time_scale * int(
                    spec["activeDeadlineSeconds"]):
            finished = ("Failed", "DeadlineExceeded",
                        "Job was active longer than specified deadline")
        elif succeeded >= completions:
            finished = ("Complete", None, None)
        if finished and finished[0] == "Failed":
            for p in active:
                c.delete_pod(p)
                counted[p["metadata"]["uid"]] = "failed"
                c.recorder.emit(job, "Normal", "SuccessfulDelete",
                                "Deleted pod: %s" % p["metadata"]["name"], self.COMPONENT)
            failed += len(active)
            active = []
        elif not finished:
            want = min(int(spec.get("parallelism", 1)), completions - succeeded) - len(active)
            delay = 0.0
            if failed:
                delay = min(self.BACKOFF * 2 ** (failed - 1), self.MAX_BACKOFF) * c.time_scale
            if want > 0 and now >= self.last_failure.get(uid, 0) + delay:
                for _ in range(want):
                    pod = self.rsc.new_pod(job, spec.get("template"))
                    if pod is not None:
                        active.append(pod)
        new_status = {}
        conditions = list(status.get("conditions") or [])
        if finished:
            cond = {"type": finished[0], "status": "True", "lastProbeTime": fmt_time(now),
                    "lastTransitionTime": fmt_time(now)}
            if finished[1]:
                cond["reason"], cond["message"] = finished[1], finished[2]
            conditions.append(cond)
            if finished[0] == "Complete":
                c.recorder.emit(job, "Normal", "Completed", "Job completed", self.COMPONENT)
            else:
                c.recorder.emit(job, "Warning", finished[1], finished[2], self.COMPONENT)
        if conditions:
            new_status["conditions"] = conditions
        new_status["startTime"] = start
        if finished and finished[0] == "Complete":
            new_status["completionTime"] = fmt_time(now)
        new_status.update(compact_status([("active", len(active)), ("succeeded", succeeded),
                                          ("failed", failed)]))
        new_status["uncountedTerminatedPods"] = {}
        new_status["ready"] = sum(1 for p in active if pod_ready(p))
        if canon(new_status) != canon(job.get("status") or {}):
            new = copy.deepcopy(job)
            new["status"] = new_status
            c.c_update(RT["jobs"], job, new, subresource="status")

    @staticmethod
    def past_backoff_on_failure(spec, active, limit):
        """pastBackoffLimitOnFailure: container restarts of running/pending pods count."""
        if deep_get(spec, "template", "spec", "restartPolicy") != "OnFailure":
            return False
        restarts = sum(int(cs.get("restartCount", 0)) for p in active
                       for cs in (deep_get(p, "status", "initContainerStatuses", default=[]) or [])
                       + (deep_get(p, "status", "containerStatuses", default=[]) or []))
        return restarts > 0 if limit == 0 else restarts >= limit


class TTLAfterFinishedController:
    """pkg/controller/ttlafterfinished (v1.28): a finished Job with ttlSecondsAfterFinished is
    deleted (propagationPolicy Foreground, so its pods go first) that many seconds (x time-scale)
    after its Complete/Failed condition."""

    def __init__(self, cluster):
        self.c = cluster

    def tick(self):
        now = time.time()
        for job in self.c.objects(RT["jobs"]):
            ttl = deep_get(job, "spec", "ttlSecondsAfterFinished")
            cond = job_finished(job)
            if ttl is None or cond is None or deleting(job):
                continue
            at = parse_time(cond.get("lastTransitionTime"))
            if at is not None and now >= at + int(ttl) * self.c.time_scale:
                try:
                    self.c.delete(RT["jobs"], job["metadata"]["namespace"],
                                  job["metadata"]["name"], {"propagationPolicy": "Foreground"})
                except ApiError:
                    pass


class GarbageCollector:
    def __init__(self, cluster):
        self.c = cluster

    def tick(self):
        c = self.c
        dependents = {}
        everything = []
        for storage, bucket in list(c.data.items()):
            if storage == ("", "events"):
                continue  # events never have owners; skipping them keeps ticks cheap
            rt = c.storage_rt(storage)
            for obj in list(bucket.values()):
                everything.append((rt, obj))
                for r in deep_get(obj, "metadata", "ownerReferences", default=[]) or []:
                    dependents.setdefault(r.get("uid"), []).append((rt, obj))
        for rt, obj in everything:
            md = obj["metadata"]
            cur = c.get(rt, md.get("namespace", ""), md["name"])
            if cur is None or cur["metadata"]["uid"] != md["uid"]:
                continue
            refs = md.get("ownerReferences") or []
            if refs and not deleting(cur):
                alive = [r for r in refs if c.get_by_uid(r.get("uid")) is not None]
                if not alive:
                    self.delete(rt, cur, "Background")
                    continue
                if len(alive) < len(refs):
                    new = copy.deepcopy(cur)
                    new["metadata"]["ownerReferences"] = alive
                    c.c_update(rt, cur, new)
                    continue
            if deleting(cur) and "foregroundDeletion" in (md.get("finalizers") or []):
                deps = [(drt, d) for drt, d in dependents.get(md["uid"], [])
                        if c.get(drt, d["metadata"].get("namespace", ""), d["metadata"]["name"])
                        is not None]
                if deps:
                    for drt, d in deps:
                        if not deleting(d):
                            self.delete(drt, d, "Foreground" if d["metadata"]["uid"] in
                                        dependents else "Background")
                else:
                    new = copy.deepcopy(cur)
                    new["metadata"]["finalizers"] = [
                        f for f in md["finalizers"] if f != "foregroundDeletion"]
                    if not new["metadata"]["finalizers"]:
                        del new["metadata"]["finalizers"]
                    c.c_update(rt, cur, new)

    def delete(self, rt, obj, policy):
        try:
            self.c.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                          {"propagationPolicy": policy})
        except ApiError:
            pass


class NamespaceController:
    def __init__(self, cluster):
        self.c = cluster

    def tick(self):
        c = self.c
        for ns_obj in c.objects(RT["namespaces"]):
            ns = ns_obj["metadata"]["name"]
            if deleting(ns_obj):
                remaining = 0
                for storage, bucket in list(c.data.items()):
                    rt = c.storage_rt(storage)
                    if not rt.namespaced:
                        continue
                    for (ons, name), obj in list(bucket.items()):
                        if ons != ns:
                            continue
                        remaining += 1
                        if not deleting(obj):
                            try:
                                c.delete(rt, ns, name, {"propagationPolicy": "Background"})
                            except ApiError:
                                pass
                if remaining == 0:
                    c._commit(RT["namespaces"], copy.deepcopy(ns_obj), "DELETED", ns_obj)
                continue
            if c.get(RT["serviceaccounts"], ns, "default") is None:
                c.c_create(RT["serviceaccounts"], ns, {"apiVersion": "v1",
                                                       "kind": "ServiceAccount",
                                                       "metadata": {"name": "default"}})
            if c.get(RT["configmaps"], ns, "kube-root-ca.crt") is None:
                c.c_create(RT["configmaps"], ns, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "annotations": {
                        "kubernetes.io/description": "Contains a CA bundle that can be used to "
                        "verify the kube-apiserver when using internal endpoints such as the "
                        "internal service IP or kubernetes.default.svc. No other usage is "
                        "guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nZmFrZS1rOHMtY2E=\n"
                                       "-----END CERTIFICATE-----\n"}})


class ControllerManager(threading.Thread):
    """Runs every controller once per tick (100 ms x time-scale) under the store lock."""

    def __init__(self, cluster):
        super().__init__(daemon=True, name="controllers")
        self.c = cluster
        self.kubelet = Kubelet(cluster)
        rsc = ReplicaSetController(cluster, self.kubelet)
        self.controllers = [NamespaceController(cluster), DeploymentController(cluster), rsc,
                            StatefulSetController(cluster, rsc), DaemonSetController(cluster, rsc),
                            JobController(cluster, rsc), TTLAfterFinishedController(cluster),
                            self.kubelet, EndpointsController(cluster), GarbageCollector(cluster)]
        cluster.kubelet = self.kubelet  # pods/log reads the containers' output from it
        self.interval = min(0.1, max(0.02, 0.1 * cluster.time_scale))

    def run(self):
        while not self.c.stopping:
            t0 = time.time()
            with self.c.lock:
                for ctl in self.controllers:
                    try:
                        ctl.tick()
                    except Exception:  # a controller bug must not stop the others
                        log("controller %s crashed:\n%s" % (type(ctl).__name__,
                                                            traceback.format_exc()))
            time.sleep(max(0.005, self.interval - (time.time() - t0)))


def bootstrap(cluster):
    """Objects a fresh cluster has: system namespaces, the node, the kubernetes Service."""
    c = cluster
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        c.create(RT["namespaces"], "", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": ns}}, "kube-apiserver")
    c.create(RT["nodes"], "", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": dict(NODE_LABELS)},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {"capacity": dict(NODE_CAPACITY), "allocatable": dict(NODE_CAPACITY),
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastHeartbeatTime": fmt_time(),
                                   "lastTransitionTime": fmt_time(), "reason": "KubeletReady",
                                   "message": "kubelet is posting ready status"}],
                   "addresses": [{"type": "InternalIP", "address": HOST_IP},
                                 {"type": "Hostname", "address": NODE_NAME}],
                   "nodeInfo": {"kubeletVersion": "v1.28.7", "kubeProxyVersion": "v1.28.7",
                                "operatingSystem": "linux", "architecture": "amd64",
                                "containerRuntimeVersion": "containerd://1.7.13",
                                "osImage": "fake", "kernelVersion": "6.1.0",
                                "machineID": "", "systemUUID": "", "bootID": ""}}},
        "kubelet", keep_status=True)
    c.used_ips.add("10.96.0.1")
    c.create(RT["services"], "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                      "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443,
                                                      "targetPort": 6443}]}},
        "kube-apiserver")


# ----------------------------------------------------------------------------------------------
# meta.k8s.io/v1 Table (what `kubectl get` asks for)
# ----------------------------------------------------------------------------------------------

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, "
             "although some resources may allow a client to request the generation of an "
             "appropriate name automatically. Name is primarily intended for creation idempotence "
             "and configuration definition. Cannot be updated. More info: "
             "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was "
            "created. It is not guaranteed to be set in happens-before order across separate "
            "operations. Clients may not set this value. It is represented in RFC3339 form and "
            "is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
            "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
            "#metadata")


def col(name, typ="string", desc="", priority=0, fmt=""):
    if name == "Name":
        return {"name": "Name", "type": "string", "format": "name", "description": NAME_DESC,
                "priority": priority}
    if name == "Age":
        desc = AGE_DESC
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


def age(obj):
    t = parse_time(deep_get(obj, "metadata", "creationTimestamp"))
    return human_duration(time.time() - t) if t else "<unknown>"


def containers_images(tmpl_spec):
    cs = (tmpl_spec or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def pod_row(p):
    status = p.get("status") or {}
    cstats = status.get("containerStatuses") or []
    total = len(deep_get(p, "spec", "containers", default=[]) or [])
    reason = status.get("reason") or status.get("phase") or "Unknown"
    restarts, last_restart, ready_n, has_running = 0, None, 0, False
    for cs in reversed(cstats):
        restarts += int(cs.get("restartCount", 0))
        fin = parse_time(deep_get(cs, "lastState", "terminated", "finishedAt"))
        if fin and (last_restart is None or fin > last_restart):
            last_restart = fin
        if deep_get(cs, "state", "waiting", "reason"):
            reason = cs["state"]["waiting"]["reason"]
        elif deep_get(cs, "state", "terminated", "reason"):
            reason = cs["state"]["terminated"]["reason"]
        elif deep_get(cs, "state", "terminated"):
            reason = "ExitCode:%d" % cs["state"]["terminated"].get("exitCode", 0)
        elif cs.get("ready") and deep_get(cs, "state", "running") is not None:
            has_running = True
            ready_n += 1
    if reason == "Completed" and has_running:
        reason = "Running" if pod_ready(p) else "NotReady"
    if deleting(p):
        reason = "Terminating"
    rs = str(restarts)
    if last_restart and restarts:
        rs = "%d (%s ago)" % (restarts, human_duration(time.time() - last_restart))
    return [p["metadata"]["name"], "%d/%d" % (ready_n, total), reason, rs, age(p),
            status.get("podIP") or "<none>", deep_get(p, "spec", "nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>",
            "<none>" if not deep_get(p, "spec", "readinessGates") else "%d/%d" % (
                0, len(p["spec"]["readinessGates"]))]


def svc_row(s):
    spec = s.get("spec") or {}
    ports = []
    for p in spec.get("ports") or []:
        if p.get("nodePort"):
            ports.append("%s:%s/%s" % (p.get("port"), p["nodePort"], p.get("protocol", "TCP")))
        else:
            ports.append("%s/%s" % (p.get("port"), p.get("protocol", "TCP")))
    ext = "<none>"
    if spec.get("type") == "LoadBalancer":
        ings = deep_get(s, "status", "loadBalancer", "ingress") or []
        ext = ",".join(i.get("ip") or i.get("hostname", "") for i in ings) or "<pending>"
    elif spec.get("externalIPs"):
        ext = ",".join(spec["externalIPs"])
    elif spec.get("type") == "ExternalName":
        ext = spec.get("externalName", "<none>")
    sel = spec.get("selector")
    return [s["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"),
            ext, ",".join(ports) or "<none>", age(s),
            ",".join("%s=%s" % kv for kv in sorted(sel.items())) if sel else "<none>"]


def event_row(e):
    last = e.get("lastTimestamp") or e.get("eventTime") or deep_get(
        e, "metadata", "creationTimestamp")
    t = parse_time(last)
    io = e.get("involvedObject") or {}
    return [human_duration(time.time() - t) if t else "<unknown>", e.get("type", ""),
            e.get("reason", ""), "%s/%s" % (io.get("kind", "").lower(), io.get("name", "")),
            io.get("fieldPath", ""), ", ".join(x for x in (
                deep_get(e, "source", "component", default=""),
                deep_get(e, "source", "host", default="")) if x),
            e.get("message", ""), human_duration(time.time() - (parse_time(
                e.get("firstTimestamp")) or time.time())), e.get("count", 1),
            e["metadata"]["name"]]


TABLES = {
    "Deployment": (
        [col("Name"), col("Ready", desc="Number of the pod with ready state"),
         col("Up-to-date", desc="Total number of non-terminated pods targeted by this deployment "
             "that have the desired template spec."),
         col("Available", desc="Total number of available pods (ready for at least "
             "minReadySeconds) targeted by this deployment."), col("Age"),
         col("Containers", desc="Names of each container in the template.", priority=1),
         col("Images", desc="Images referenced by each container in the template.", priority=1),
         col("Selector", desc="Label selector for pods. Existing ReplicaSets whose pods are "
             "selected by this will be the ones affected by this deployment.", priority=1)],
        lambda d: [d["metadata"]["name"], "%d/%d" % (st(d, "readyReplicas"), replicas(d)),
                   st(d, "updatedReplicas"), st(d, "availableReplicas"), age(d)] +
        list(containers_images(deep_get(d, "spec", "template", "spec"))) +
        [label_selector_string(deep_get(d, "spec", "selector"))]),
    "ReplicaSet": (
        [col("Name"), col("Desired", "integer", "Number of desired pods."),
         col("Current", "integer", "Number of actual replicas."),
         col("Ready", "integer", "The number of ready replicas for this replica set."),
         col("Age"), col("Containers", priority=1), col("Images", priority=1),
         col("Selector", priority=1)],
        lambda r: [r["metadata"]["name"], replicas(r), st(r, "replicas"), st(r, "readyReplicas"),
                   age(r)] + list(containers_images(deep_get(r, "spec", "template", "spec"))) +
        [label_selector_string(deep_get(r, "spec", "selector"))]),
    "StatefulSet": (
        [col("Name"), col("Ready", desc="Number of the pod with ready state"), col("Age"),
         col("Containers", priority=1), col("Images", priority=1)],
        lambda s: [s["metadata"]["name"], "%d/%d" % (st(s, "readyReplicas"), replicas(s)),
                   age(s)] + list(containers_images(deep_get(s, "spec", "template", "spec")))),
    "DaemonSet": (
        [col("Name"), col("Desired", "integer"), col("Current", "integer"),
         col("Ready", "integer"), col("Up-to-date", "integer"), col("Available", "integer"),
         col("Node Selector"), col("Age"), col("Containers", priority=1),
         col("Images", priority=1), col("Selector", priority=1)],
        lambda d: [d["metadata"]["name"], st(d, "desiredNumberScheduled"),
                   st(d, "currentNumberScheduled"), st(d, "numberReady"),
                   st(d, "updatedNumberScheduled"), st(d, "numberAvailable"),
                   ",".join("%s=%s" % kv for kv in sorted((deep_get(
                       d, "spec", "template", "spec", "nodeSelector") or {}).items())) or
                   "<none>", age(d)] +
        list(containers_images(deep_get(d, "spec", "template", "spec"))) +
        [label_selector_string(deep_get(d, "spec", "selector"))]),
    "Pod": (
        [col("Name"), col("Ready", desc="The aggregate readiness state of this pod for accepting "
                          "traffic."),
         col("Status", desc="The aggregate status of the containers in this pod."),
         col("Restarts", desc="The number of times the containers in this pod have been "
             "restarted and when the last container in this pod has restarted."),
         col("Age"), col("IP", priority=1), col("Node", priority=1),
         col("Nominated Node", priority=1), col("Readiness Gates", priority=1)],
        pod_row),
    "Service": (
        [col("Name"), col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"),
         col("Age"), col("Selector", priority=1)], svc_row),
    "Namespace": (
        [col("Name"), col("Status"), col("Age")],
        lambda n: [n["metadata"]["name"], deep_get(n, "status", "phase", default=""), age(n)]),
    "ConfigMap": (
        [col("Name"), col("Data", "integer"), col("Age")],
        lambda c: [c["metadata"]["name"], len(c.get("data") or {}) + len(
            c.get("binaryData") or {}), age(c)]),
    "Secret": (
        [col("Name"), col("Type"), col("Data", "integer"), col("Age")],
        lambda s: [s["metadata"]["name"], s.get("type", ""), len(s.get("data") or {}), age(s)]),
    "Event": (
        [col("Last Seen"), col("Type"), col("Reason"), col("Object"),
         col("Subobject", priority=1), col("Source", priority=1), col("Message"),
         col("First Seen", priority=1), col("Count", "integer", priority=1),
         col("Name", priority=1)], event_row),
    "EndpointSlice": (
        [col("Name"), col("AddressType"), col("Ports"), col("Endpoints"), col("Age")],
        lambda s: [s["metadata"]["name"], s.get("addressType", ""),
                   ",".join(str(p.get("port")) for p in s.get("ports") or []) or "<unset>",
                   ",".join(a for e in s.get("endpoints") or [] for a in e.get("addresses", []))
                   or "<unset>", age(s)]),
    "Endpoints": (
        [col("Name"), col("Endpoints"), col("Age")],
        lambda e: [e["metadata"]["name"], ",".join(
            "%s:%s" % (a["ip"], p["port"]) for sset in e.get("subsets") or []
            for a in sset.get("addresses") or [] for p in sset.get("ports") or []) or "<none>",
            age(e)]),
    "Lease": (
        [col("Name"), col("Holder"), col("Age")],
        lambda l: [l["metadata"]["name"], deep_get(l, "spec", "holderIdentity", default=""),
                   age(l)]),
    "Node": (
        [col("Name"), col("Status"), col("Roles"), col("Age"), col("Version")],
        lambda n: [n["metadata"]["name"], "Ready", "<none>", age(n),
                   deep_get(n, "status", "nodeInfo", "kubeletVersion", default="")]),
    "ServiceAccount": (
        [col("Name"), col("Secrets", "integer"), col("Age")],
        lambda s: [s["metadata"]["name"], len(s.get("secrets") or []), age(s)]),
    "Job": (
        [col("Name"), col("Completions"), col("Duration"), col("Age")],
        lambda j: [j["metadata"]["name"], "%d/%d" % (st(j, "succeeded"), int(deep_get(
            j, "spec", "completions", default=1) or 1)), age(j), age(j)]),
}


def table_row(rt, obj, include):
    cols, fn = TABLES.get(rt.kind, ([col("Name"), col("Created At", "date")], None))
    if fn is None:
        cells = [obj["metadata"]["name"], deep_get(obj, "metadata", "creationTimestamp")]
    else:
        try:
            cells = fn(obj)
        except Exception:  # a weird object must not break `kubectl get`
            cells = [obj["metadata"]["name"]] + ["<error>"] * (len(cols) - 1)
    if include == "None":
        o = None
    elif include == "Object":
        o = obj
    else:
        o = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
             "metadata": obj["metadata"]}
    return {"cells": cells, "object": o}


def make_table(rt, objs, include, rv, headers=True, extra_meta=None):
    cols = TABLES.get(rt.kind, ([col("Name"), col("Created At", "date")], None))[0]
    md = {"resourceVersion": rv}
    md.update(extra_meta or {})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": md,
            "columnDefinitions": cols if headers else None,
            "rows": [table_row(rt, o, include) for o in objs]}


# ----------------------------------------------------------------------------------------------
# Discovery documents (generated from RESOURCES so they always agree with what is served)
# ----------------------------------------------------------------------------------------------

AGG_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def aggregated_discovery(core):
    items = []
    for g in ([""] if core else GROUP_ORDER):
        versions = []
        for v in GROUP_VERSIONS.get(g, []):
            res = []
            for r in sorted((r for r in RESOURCES if r.group == g and r.version == v),
                            key=lambda r: r.resource):
                e = {"resource": r.resource,
                     "responseKind": {"group": "", "version": "", "kind": r.kind},
                     "scope": "Namespaced" if r.namespaced else "Cluster",
                     "singularResource": r.singular, "verbs": r.verbs}
                if r.short:
                    e["shortNames"] = r.short
                if r.categories:
                    e["categories"] = r.categories
                if r.subresources:
                    e["subresources"] = [{
                        "subresource": s[0],
                        "responseKind": {"group": s[3] if len(s) > 3 else "",
                                         "version": s[4] if len(s) > 4 else "", "kind": s[1]},
                        "verbs": s[2]} for s in r.subresources]
                res.append(e)
            versions.append({"version": v, "resources": res, "freshness": "Current"})
        md = {"creationTimestamp": None}
        if g:
            md = {"name": g, "creationTimestamp": None}
        items.append({"metadata": md, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2beta1",
            "metadata": {}, "items": items}


def api_group(g):
    vs = GROUP_VERSIONS[g]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": g,
            "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs],
            "preferredVersion": {"groupVersion": "%s/%s" % (g, vs[0]), "version": vs[0]}}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
                       for g in GROUP_ORDER]}


def api_resource_list(g, v):
    res = []
    for r in sorted((r for r in RESOURCES if r.group == g and r.version == v),
                    key=lambda r: r.resource):
        e = {"name": r.resource, "singularName": r.singular, "namespaced": r.namespaced,
             "kind": r.kind, "verbs": r.verbs}
        if r.short:
            e["shortNames"] = r.short
        if r.categories:
            e["categories"] = r.categories
        e["storageVersionHash"] = base64.b64encode(
            hashlib.sha256(("%s/%s" % (g, r.resource)).encode()).digest()[:8]).decode()
        res.append(e)
        for s in r.subresources:
            se = {"name": "%s/%s" % (r.resource, s[0]), "singularName": "",
                  "namespaced": r.namespaced}
            if len(s) > 3:
                se["group"], se["version"] = s[3], s[4]
            se["kind"] = s[1]
            se["verbs"] = s[2]
            res.append(se)
    out = {"kind": "APIResourceList"}
    if g:
        out["apiVersion"] = "v1"
    out["groupVersion"] = "%s/%s" % (g, v) if g else v
    out["resources"] = res
    return out


def openapi_v3_index():
    paths = {"api": {}, "api/v1": {}, "apis": {}, "version": {}}
    for g in GROUP_ORDER:
        for v in GROUP_VERSIONS[g]:
            paths["apis/%s/%s" % (g, v)] = {}
    out = {}
    for p in sorted(paths):
        h = hashlib.sha512(p.encode()).hexdigest().upper()
        out[p] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (p, h)}
    return {"paths": out}


def openapi_v3_doc(path):
    """A minimal OpenAPI v3 document per group-version: no schemas, but one path per resource
    whose PATCH operation carries x-kubernetes-group-version-kind and the fieldValidation /
    dryRun query parameters.  kubectl's QueryParamVerifierV3 looks exactly for that to decide
    it may use server-side field validation instead of downloading /openapi/v2."""
    paths = {}
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")]
    for r in RESOURCES:
        gv = r.api_version
        if not (path == "api/v1" and r.group == "" or path == "apis/" + gv):
            continue
        prefix = "/api/v1" if not r.group else "/apis/" + gv
        base = prefix + ("/namespaces/{namespace}/" if r.namespaced else "/") + r.resource
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        paths[base + "/{name}"] = {
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
            "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                      "parameters": params},
            "put": {"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk,
                    "parameters": params}}
        paths[base] = {"post": {"x-kubernetes-action": "post",
                                "x-kubernetes-group-version-kind": gvk, "parameters": params}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.28.7"},
            "paths": paths, "components": {"schemas": {}}}


# ----------------------------------------------------------------------------------------------
# HTTP layer
# ----------------------------------------------------------------------------------------------


def parse_accept(header):
    out = []
    for part in (header or "").split(","):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


PATCH_TYPES = {"application/merge-patch+json": "merge",
               "application/strategic-merge-patch+json": "strategic",
               "application/json-patch+json": "json",
               "application/apply-patch+yaml": "apply"}


class StopServing(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/1.28.7"
    cluster = None
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            log("%s %s" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    # ---- plumbing -----------------------------------------------------------------------------
    def read_body(self):
        if getattr(self, "_body", None) is not None:
            return self._body
        data = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16) if line else 0
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                data = self.rfile.read(n)
        self._body = data
        return data

    def send_bytes(self, code, data, ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_obj(self, code, obj, headers=None):
        fmt = getattr(self, "_fmt", "json")
        hdrs = dict(headers or {})
        hdrs.update(getattr(self, "_warnings", {}))
        if fmt == "yaml":
            self.send_bytes(code, yaml_dump(obj).encode(), "application/yaml", hdrs)
        else:
            self.send_bytes(code, dumps(obj).encode(), "application/json", hdrs)

    def send_error_status(self, e):
        if e.raw is not None:
            self.send_bytes(e.code, e.raw.encode(), e.content_type, e.extra_headers)
            return
        self.send_bytes(e.code, dumps(e.body()).encode(), "application/json", e.extra_headers)

    def dispatch(self, method):
        self._body = None
        self._warnings = {}
        self._fmt = "json"
        try:
            # Always consume the request body so a kept-alive connection stays in sync even
            # when the handler does not need it (e.g. an Eviction body).
            self.read_body()
            self.route(method)
        except ApiError as e:
            try:
                self.read_body()
                self.send_error_status(e)
            except (BrokenPipeError, ConnectionResetError):
                pass
        except (BrokenPipeError, ConnectionResetError, StopServing):
            self.close_connection = True
        except Exception:  # never kill the thread: answer like an apiserver panic would
            log("internal error on %s %s:\n%s" % (method, self.path, traceback.format_exc()))
            try:
                self.send_error_status(err_internal("fake apiserver: %s" % (
                    sys.exc_info()[1],)))
            except Exception:
                self.close_connection = True

    # ---- routing ------------------------------------------------------------------------------
    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = {}
        for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            q[k] = v
        self.q = q
        segs = [s for s in path.split("/") if s]
        if path in ("/healthz", "/livez", "/readyz") or (segs and segs[0] in (
                "healthz", "livez", "readyz")):
            return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self.send_bytes(200, dumps(SERVER_VERSION).encode())
        if path == "/":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2",
                     "/openapi/v3", "/readyz", "/version"] + sorted(
                "/apis/%s/%s" % (g, v) for g in GROUP_ORDER for v in GROUP_VERSIONS[g])
            return self.send_bytes(200, dumps({"paths": paths}).encode())
        if segs[:1] == ["openapi"]:
            return self.openapi(segs)
        if segs == ["api"] or segs == ["apis"]:
            return self.discovery_root(segs[0] == "api")
        if segs[:1] == ["api"]:
            if segs[1] != "v1":
                raise err_resource_not_found()
            if len(segs) == 2:
                return self.send_json_plain(api_resource_list("", "v1"))
            return self.resource(method, "", "v1", segs[2:])
        if segs[:1] == ["apis"]:
            g = segs[1]
            if g not in GROUP_VERSIONS or g == "":
                raise ApiError(404, None, "", raw="404 page not found\n",
                               content_type="text/plain; charset=utf-8")
            if len(segs) == 2:
                return self.send_json_plain(api_group(g))
            v = segs[2]
            if v not in GROUP_VERSIONS[g]:
                raise err_resource_not_found()
            if len(segs) == 3:
                return self.send_json_plain(api_resource_list(g, v))
            return self.resource(method, g, v, segs[3:])
        raise ApiError(404, None, "", raw="404 page not found\n",
                       content_type="text/plain; charset=utf-8")

    def send_json_plain(self, obj):
        self.send_bytes(200, dumps(obj).encode())

    def openapi(self, segs):
        if segs == ["openapi", "v2"]:
            # kubectl asks for protobuf; a 404 makes it fall back / skip (verified with kubectl).
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        if segs == ["openapi", "v3"]:
            return self.send_bytes(200, dumps(openapi_v3_index()).encode(),
                                   "text/plain; charset=utf-8")
        return self.send_bytes(200, dumps(openapi_v3_doc("/".join(segs[2:]))).encode())

    def discovery_root(self, core):
        accepts = parse_accept(self.headers.get("Accept"))
        chosen = None
        for mt, params in accepts or [("application/json", {})]:
            if params.get("as") == "APIGroupDiscoveryList":
                if params.get("v") == "v2beta1" and params.get("g") == "apidiscovery.k8s.io":
                    chosen = "agg"
                    break
                continue
            if mt in ("application/json", "*/*", "application/*", "application/yaml"):
                chosen = "plain"
                break
        if chosen is None:
            raise ApiError(406, "NotAcceptable",
                           "only the following media types are accepted: application/json, "
                           "application/yaml, application/vnd.kubernetes.protobuf")
        if chosen == "agg":
            body = dumps(aggregated_discovery(core)).encode()
            etag = '"%s"' % hashlib.sha512(body).hexdigest().upper()
            hdrs = {"ETag": etag, "Vary": "Accept"}
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return self.send_bytes(200, body, AGG_TYPE, hdrs)
        if core:
            host = self.server.server_address
            return self.send_json_plain({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": "%s:%d" % (host[0], host[1])}]})
        return self.send_json_plain(api_group_list())

    # ---- resources ----------------------------------------------------------------------------
    def resource(self, method, g, v, segs):
        watch = False
        if segs and segs[0] == "watch":
            watch = True
            segs = segs[1:]
        ns, name, sub = None, None, None
        if len(segs) >= 2 and segs[0] == "namespaces" and (
                len(segs) == 2 or (len(segs) == 3 and segs[2] in ("status", "finalize"))):
            res = "namespaces"
            name = segs[1]
            sub = segs[2] if len(segs) == 3 else None
        elif len(segs) >= 3 and segs[0] == "namespaces":
            ns, res = segs[1], segs[2]
            name = segs[3] if len(segs) > 3 else None
            sub = segs[4] if len(segs) > 4 else None
            if len(segs) > 5:
                raise err_resource_not_found()
        elif segs:
            res = segs[0]
            name = segs[1] if len(segs) > 1 else None
            sub = segs[2] if len(segs) > 2 else None
            if len(segs) > 3:
                raise err_resource_not_found()
        else:
            raise err_resource_not_found()
        rt = RES_BY_GVR.get((g, v, res))
        if rt is None or (ns is not None and not rt.namespaced):
            raise err_resource_not_found()
        if sub is not None and sub not in [s[0] for s in rt.subresources]:
            raise err_resource_not_found()
        if not rt.namespaced:
            ns = ""
        self.negotiate()
        c = self.cluster
        q = self.q
        dry = q.get("dryRun") == "All"
        if rt.resource in ("selfsubjectaccessreviews", "selfsubjectreviews"):
            if method != "POST" or name:
                raise err_method_not_allowed()
            return self.review(rt)
        if name is None:
            if method == "GET" or method == "HEAD":
                if watch or q.get("watch") in ("1", "true", "True"):
                    return self.watch(rt, ns)
                return self.list(rt, ns)
            if method == "POST":
                body = self.decode_body(rt)
                with c.lock:
                    obj = c.create(rt, ns, body, self.manager(), dry)
                return self.send_obj(201, to_view(rt, obj))
            if method == "DELETE":
                return self.delete_collection(rt, ns)
            raise err_method_not_allowed()
        if method in ("GET", "HEAD"):
            if watch:
                self.q["fieldSelector"] = "metadata.name=" + name
                return self.watch(rt, ns)
            with c.lock:
                obj = c.get(rt, ns, name)
                if obj is None:
                    raise err_not_found(rt, name)
                obj = copy.deepcopy(obj)
            if sub == "scale":
                return self.send_obj(200, scale_view(rt, obj))
            if sub == "log":
                return self.pod_log(obj)
            return self.send_get(rt, obj)
        if method == "POST":
            if sub == "eviction":
                with c.lock:
                    obj = c.get(rt, ns, name)
                    if obj is None:
                        raise err_not_found(rt, name)
                    if not dry:
                        c.delete_pod(obj)
                return self.send_obj(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                           "status": "Success", "code": 201})
            if sub == "token":
                return self.token_request(rt, ns, name)
            raise err_method_not_allowed()
        if method == "PUT":
            if sub not in (None, "status", "scale"):
                raise err_method_not_allowed()
            if sub == "scale":
                body = self.parse_json(self.read_body(), "Scale")
                with c.lock:
                    old = c.get(rt, ns, name)
                    if old is None:
                        raise err_not_found(rt, name)
                    srv = deep_get(body, "metadata", "resourceVersion")
                    if srv and srv != old["metadata"]["resourceVersion"]:
                        raise err_conflict(rt, name)
                    obj = c.save_scale(rt, old, body, self.manager(), dry)
                return self.send_obj(200, scale_view(rt, obj))
            body = self.decode_body(rt)
            with c.lock:
                obj, created = c.update(rt, ns, name, body, self.manager(), sub, dry)
            return self.send_obj(201 if created else 200, to_view(rt, obj))
        if method == "PATCH":
            return self.patch(rt, ns, name, sub, dry)
        if method == "DELETE":
            if sub:
                raise err_method_not_allowed()
            opts = self.delete_options()
            dry = dry or "All" in (opts.get("dryRun") or [])  # kube-rs puts dryRun in the body
            with c.lock:
                code, body = c.delete(rt, ns, name, opts, dry)
            return self.send_obj(code, body)
        raise err_method_not_allowed()

    def pod_log(self, pod):
        """GET pods/NAME/log (container, tailLines): the apiserver's checks
        (pkg/registry/core/pod/strategy.go LogLocation), then the kubelet's."""
        name = pod["metadata"]["name"]
        names = [c.get("name") for c in deep_get(pod, "spec", "containers", default=[]) or []]
        container = self.q.get("container")
        if not container:
            if len(names) != 1:
                raise err_bad_request("a container name must be specified for pod %s, choose "
                                      "one of: [%s]" % (name, " ".join(names)))
            container = names[0]
        elif container not in names:
            raise err_bad_request("container %s is not valid for pod %s" % (container, name))
        if not deep_get(pod, "spec", "nodeName"):
            return self.send_bytes(200, b"", "text/plain")  # no host yet: an empty stream
        kubelet = getattr(self.cluster, "kubelet", None)
        with self.cluster.lock:
            lines, err = kubelet.logs(pod, container) if kubelet else ([], None)
        if err:
            raise err_bad_request(err)
        tail = self.q.get("tailLines")
        if tail is not None and tail.isdigit():
            lines = lines[len(lines) - int(tail):] if int(tail) else []
        body = "".join(line + "\n" for line in lines)
        return self.send_bytes(200, body.encode(), "text/plain")

    def negotiate(self):
        """Pick the response representation from Accept (JSON, YAML, Table, metadata-only)."""
        self._fmt = "json"
        self._as = None
        accepts = parse_accept(self.headers.get("Accept"))
        if not accepts:
            return
        for mt, params in accepts:
            if params.get("as") in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
                if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                    self._as = params["as"]
                    self._as_version = params["v"]
                    return
                continue
            if mt in ("application/json", "*/*", "application/*"):
                return
            if mt == "application/yaml":
                self._fmt = "yaml"
                return
        raise ApiError(406, "NotAcceptable", "406: Not Acceptable\n\nAvailable representations: "
                       "application/json, application/yaml, application/vnd.kubernetes.protobuf",
                       {})

    def manager(self):
        fm = self.q.get("fieldManager")
        if fm:
            return fm
        ua = self.headers.get("User-Agent") or "unknown"
        return ua.split("/")[0]

    def parse_json(self, raw, kind):
        def no_dupes(pairs):
            d = {}
            for k, v in pairs:
                if k in d and self.q.get("fieldValidation") == "Strict":
                    raise err_bad_request('%s in version "v1" cannot be handled as a %s: strict '
                                          'decoding error: duplicate field "%s"' % (kind, kind, k))
                d[k] = v
            return d
        try:
            return json.loads(raw.decode("utf-8") or "null", object_pairs_hook=no_dupes)
        except ValueError as e:
            snippet = raw[:30].decode("utf-8", "replace")
            raise err_bad_request(
                "the object provided is unrecognized (must be of type %s): couldn't get "
                "version/kind; json parse error: %s (%s ...)" % (kind, e, snippet))

    def decode_body(self, rt):
        """POST/PUT body: JSON or YAML, kind check, unknown-field validation."""
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        raw = self.read_body()
        if ctype in ("application/json", ""):
            body = self.parse_json(raw, rt.kind)
        elif ctype == "application/yaml":
            try:
                body = yaml_load(raw.decode("utf-8"))
            except (YamlError, ValueError) as e:
                raise err_bad_request("error converting YAML to JSON: %s" % e)
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json, application/yaml, "
                           "application/vnd.kubernetes.protobuf")
        if not isinstance(body, dict):
            raise err_bad_request("the object provided is unrecognized (must be of type %s): "
                                  "couldn't get version/kind; json parse error" % rt.kind)
        bk = body.get("kind")
        if bk and bk != rt.kind:
            raise err_bad_request('%s in version "%s" cannot be handled as a %s: converting '
                                  "(%s.%s) to (%s.%s): unknown conversion" % (
                                      bk, rt.version, rt.kind, rt.version, bk,
                                      "core" if not rt.group else rt.group.split(".")[0],
                                      rt.kind))
        return self.check_unknown_fields(rt, body)

    def check_unknown_fields(self, rt, body):
        unknown = [k for k in body if k not in rt.top_fields]
        if not unknown:
            return body
        mode = self.q.get("fieldValidation", "Warn")
        if mode == "Strict":
            raise err_bad_request('%s in version "%s" cannot be handled as a %s: strict decoding '
                                  'error: %s' % (rt.kind, rt.version, rt.kind, ", ".join(
                                      'unknown field "%s"' % k for k in unknown)))
        if mode != "Ignore":
            self._warnings = {"Warning": ", ".join('299 - "unknown field \\"%s\\""' % k
                                                   for k in unknown)}
        return {k: v for k, v in body.items() if k not in unknown}

    def send_get(self, rt, obj):
        view = to_view(rt, obj)
        if self._as == "Table":
            return self.send_obj(200, make_table(rt, [obj], self.q.get("includeObject"),
                                                 obj["metadata"]["resourceVersion"]))
        if self._as == "PartialObjectMetadata":
            return self.send_obj(200, {"kind": "PartialObjectMetadata",
                                       "apiVersion": "meta.k8s.io/" + self._as_version,
                                       "metadata": obj["metadata"]})
        return self.send_obj(200, view)

    # ---- list ---------------------------------------------------------------------------------
    def selected(self, rt, ns):
        """Current objects matching namespace/label/field selectors (as stored)."""
        c = self.cluster
        lreqs = parse_label_selector(self.q.get("labelSelector"))
        freqs = parse_field_selector(self.q.get("fieldSelector"), rt)
        out = []
        for obj in c.objects(rt, ns or None):
            if not label_match(lreqs, deep_get(obj, "metadata", "labels")):
                continue
            if freqs and not field_match(freqs, to_view(rt, obj)):
                continue
            out.append(obj)
        return out

    def list(self, rt, ns):
        c = self.cluster
        q = self.q
        rv = q.get("resourceVersion")
        if q.get("resourceVersionMatch") and not rv:
            raise ApiError(
                422, "Invalid",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
                {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [cause(
                    "FieldValueForbidden", "Forbidden: resourceVersionMatch is forbidden unless "
                    "resourceVersion is provided", "resourceVersionMatch")]})
        if q.get("continue") and rv:
            raise err_bad_request("specifying resource version is not allowed when using "
                                  "continue")
        if rv and rv != "0":
            try:
                want = int(rv)
            except ValueError:
                raise err_bad_request('resourceVersion: Invalid value: "%s": must be a valid '
                                      "resourceVersion" % rv)
            deadline = time.time() + 3
            while want > c.rv and time.time() < deadline:
                time.sleep(0.05)
            if want > c.rv:
                raise ApiError(504, "Timeout", "Timeout: Too large resource version: %d, current: "
                               "%d" % (want, c.rv), {"causes": [{
                                   "reason": "ResourceVersionTooLarge",
                                   "message": "Too large resource version"}],
                                   "retryAfterSeconds": 1}, extra_headers={"Retry-After": "1"})
            if q.get("resourceVersionMatch") == "Exact" and want < c.evicted_upto:
                raise ApiError(410, "Expired", "The resourceVersion for the provided list is too "
                               "old.")
        start = None
        if q.get("continue"):
            tok = q["continue"]
            try:
                data = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
                start = data["start"]
                if data.get("rv", 0) >= 0 and data.get("rv", 0) < c.evicted_upto:
                    pass  # we keep no snapshots; serve the current state (approximation)
            except (ValueError, KeyError, TypeError) as e:
                raise err_bad_request("invalid continue token: continue key is not valid: %s" % e)
        with c.lock:
            objs = self.selected(rt, ns)
            cur_rv = str(c.rv)
            keyed = [("%s/%s" % (o["metadata"].get("namespace", ""), o["metadata"]["name"])
                      if rt.namespaced and not ns else o["metadata"]["name"], o) for o in objs]
            keyed.sort(key=lambda x: x[0])
            if start is not None:
                keyed = [x for x in keyed if x[0] >= start]
            meta = {"resourceVersion": cur_rv}
            limit = q.get("limit")
            if limit and rv != "0":
                try:
                    n = int(limit)
                except ValueError:
                    n = 0
                if n > 0 and len(keyed) > n:
                    rest = len(keyed) - n
                    keyed = keyed[:n]
                    tok = {"v": "meta.k8s.io/v1", "rv": int(cur_rv),
                           "start": keyed[-1][0] + "\u0000"}
                    meta["continue"] = base64.urlsafe_b64encode(
                        json.dumps(tok, separators=(",", ":")).encode()).decode().rstrip("=")
                    if not q.get("labelSelector") and not q.get("fieldSelector"):
                        meta["remainingItemCount"] = rest
            items = [copy.deepcopy(o) for _, o in keyed]
        if self._as == "Table":
            return self.send_obj(200, make_table(rt, items, q.get("includeObject"), cur_rv,
                                                 extra_meta={k: v for k, v in meta.items()
                                                             if k != "resourceVersion"}))
        if self._as in ("PartialObjectMetadataList", "PartialObjectMetadata"):
            return self.send_obj(200, {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/" + self._as_version, "metadata": meta,
                "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/" +
                           self._as_version, "metadata": o["metadata"]} for o in items]})
        out_items = []
        for o in items:
            v = to_view(rt, o)
            v = {k: x for k, x in v.items() if k not in ("kind", "apiVersion")}
            out_items.append(v)
        return self.send_obj(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                   "metadata": meta, "items": out_items})

    def delete_collection(self, rt, ns):
        c = self.cluster
        opts = self.delete_options()
        dry = self.q.get("dryRun") == "All" or "All" in (opts.get("dryRun") or [])
        with c.lock:
            objs = self.selected(rt, ns)
            out = []
            for o in objs:
                try:
                    code, body = c.delete(rt, o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"], opts, dry)
                    out.append({k: v for k, v in to_view(rt, o).items()
                                if k not in ("kind", "apiVersion")})
                except ApiError:
                    pass
            rv = str(c.rv)
        return self.send_obj(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                   "metadata": {"resourceVersion": rv}, "items": out})

    def delete_options(self):
        opts = {}
        raw = self.read_body()
        if raw.strip():
            try:
                opts = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise err_bad_request("the body of the request was in an unknown format")
            if not isinstance(opts, dict):
                opts = {}
        q = self.q
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("gracePeriodSeconds"):
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if q.get("orphanDependents"):
            opts["orphanDependents"] = q["orphanDependents"] == "true"
        pp = opts.get("propagationPolicy")
        if pp and pp not in ("Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", 'DeleteOptions.meta.k8s.io "" is invalid: '
                           'propagationPolicy: Unsupported value: "%s": supported values: '
                           '"Foreground", "Background", "Orphan", "nil"' % pp,
                           {"group": "meta.k8s.io", "kind": "DeleteOptions"})
        return opts

    # ---- patch --------------------------------------------------------------------------------
    def patch(self, rt, ns, name, sub, dry):
        c = self.cluster
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        ptype = PATCH_TYPES.get(ctype)
        if ptype is None:
            raise ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
        if sub not in (None, "status", "scale"):
            raise err_method_not_allowed()
        raw = self.read_body()
        if ptype == "apply":
            fm = self.q.get("fieldManager")
            if not fm:
                raise ApiError(
                    422, "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                    "required for apply patch",
                    {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [cause(
                        "FieldValueRequired", "Required value: is required for apply patch",
                        "fieldManager")]})
            text = raw.decode("utf-8")
            try:
                body = json.loads(text)
            except ValueError:
                try:
                    body = yaml_load(text)
                except (YamlError, ValueError) as e:
                    raise err_bad_request("error decoding YAML: %s" % e)
            force = self.q.get("force") in ("true", "1", "True")
            with c.lock:
                obj, created = c.apply(rt, ns, name, body, fm, force, sub, dry)
            return self.send_obj(201 if created else 200, to_view(rt, obj))
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except ValueError as e:
            raise err_bad_request("error decoding patch: %s" % e)
        if ptype == "json" and not isinstance(body, list):
            raise err_bad_request("json: cannot unmarshal object into Go value of type "
                                  "jsonpatch.Patch")
        if ptype != "json" and not isinstance(body, dict):
            raise err_bad_request("error decoding patch: the patch must be a JSON object")
        with c.lock:
            obj = c.patch(rt, ns, name, ptype, body, self.manager(), sub, dry)
            if sub != "scale" and ptype != "json":
                extra = [k for k in body if k not in rt.top_fields]
                if extra and self.q.get("fieldValidation") == "Strict":
                    raise err_bad_request('%s in version "%s" cannot be handled as a %s: strict '
                                          'decoding error: unknown field "%s"' % (
                                              rt.kind, rt.version, rt.kind, extra[0]))
        if sub == "scale":
            return self.send_obj(200, scale_view(rt, obj))
        return self.send_obj(200, to_view(rt, obj))

    # ---- special create-only resources ------------------------------------------------------
    def review(self, rt):
        body = self.parse_json(self.read_body(), rt.kind) or {}
        if not isinstance(body, dict):
            body = {}
        md = {"creationTimestamp": None}
        if rt.kind == "SelfSubjectAccessReview":
            out = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": md,
                   "spec": body.get("spec") or {},
                   "status": {"allowed": True, "reason": "fake apiserver allows everything"}}
        else:
            out = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": md,
                   "status": {"userInfo": {"username": "fake-admin",
                                           "groups": ["system:masters", "system:authenticated"]}}}
        return self.send_obj(201, out)

    def token_request(self, rt, ns, name):
        c = self.cluster
        body = self.parse_json(self.read_body(), "TokenRequest") or {}
        with c.lock:
            if c.get(rt, ns, name) is None:
                raise err_not_found(rt, name)
        exp = int(deep_get(body, "spec", "expirationSeconds", default=3600) or 3600)
        tok = "fake." + base64.urlsafe_b64encode(
            ("system:serviceaccount:%s:%s" % (ns, name)).encode()).decode().rstrip("=") + \
            ".sig"
        return self.send_obj(201, {
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": fmt_time()},
            "spec": {"audiences": deep_get(body, "spec", "audiences") or [
                "https://kubernetes.default.svc.cluster.local"], "expirationSeconds": exp,
                "boundObjectRef": deep_get(body, "spec", "boundObjectRef")},
            "status": {"token": tok, "expirationTimestamp": fmt_time(time.time() + exp)}})

    # ---- watch --------------------------------------------------------------------------------
    def watch(self, rt, ns):
        c = self.cluster
        q = self.q
        if q.get("sendInitialEvents"):
            raise ApiError(
                422, "Invalid",
                'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is "
                "enabled", {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [cause(
                    "FieldValueForbidden", "Forbidden: sendInitialEvents is forbidden for watch "
                    "unless the WatchList feature gate is enabled", "sendInitialEvents")]})
        lreqs = parse_label_selector(q.get("labelSelector"))
        freqs = parse_field_selector(q.get("fieldSelector"), rt)
        try:
            timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else \
                1800 * (1 + random.random())
        except ValueError:
            raise err_bad_request("invalid timeoutSeconds")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1", "True")
        include = q.get("includeObject")
        table = self._as == "Table"
        rv = q.get("resourceVersion")

        def matches(obj):
            if obj is None:
                return False
            if ns and rt.namespaced and obj["metadata"].get("namespace") != ns:
                return False
            if not label_match(lreqs, deep_get(obj, "metadata", "labels")):
                return False
            return not freqs or field_match(freqs, to_view(rt, obj))

        def translate(ev):
            """A store event as this watcher sees it (selector transitions, as in 11)."""
            if ev.storage != rt.storage:
                return None
            if ev.type == "MODIFIED":
                now_m, was_m = matches(ev.obj), matches(ev.old)
                if now_m and was_m:
                    return ("MODIFIED", ev.obj)
                if now_m:
                    return ("ADDED", ev.obj)
                if was_m:
                    gone = copy.deepcopy(ev.old)
                    gone["metadata"]["resourceVersion"] = str(ev.rv)
                    return ("DELETED", gone)
                return None
            if matches(ev.obj):
                return (ev.type, ev.obj)
            return None

        expired = None
        pending = []
        with c.lock:
            if not rv or rv == "0":
                for obj in c.objects(rt, ns or None):
                    if matches(obj):
                        pending.append(("ADDED", obj))
                last = c.rv
                start_rv = c.rv
            else:
                try:
                    n = int(rv)
                except ValueError:
                    raise err_bad_request('resourceVersion: Invalid value: "%s"' % rv)
                oldest = c.history[0].rv if c.history else c.rv + 1
                if c.evicted_upto and n < c.evicted_upto:
                    expired = "too old resource version: %d (%d)" % (n, oldest - 1)
                start_rv = n
                last = n
                for ev in c.history:
                    if ev.rv > n:
                        t = translate(ev)
                        if t:
                            pending.append(t)
                        last = max(last, ev.rv)
                last = max(last, n)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        first = [True]

        def emit(etype, obj):
            if table and etype != "ERROR" and etype != "BOOKMARK":
                out = make_table(rt, [obj], include, obj["metadata"]["resourceVersion"],
                                 headers=first[0])
                first[0] = False
            elif etype in ("ERROR", "BOOKMARK"):
                out = obj
            else:
                out = to_view(rt, obj)
            line = (dumps({"type": etype, "object": out}) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        def finish():
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        if expired:
            emit("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": expired, "reason": "Expired",
                           "code": 410})
            finish()
            return
        for etype, obj in pending:
            emit(etype, obj)
        t0 = time.time()
        deadline = t0 + timeout
        next_bm = min(t0 + 60, deadline - 2) if bookmarks else None
        while not c.stopping:
            now = time.time()
            if now >= deadline:
                break
            batch = []
            with c.lock:
                if c.rv <= last:
                    wait_until = deadline if next_bm is None else min(deadline, next_bm)
                    c.cond.wait(timeout=max(0.0, min(1.0, wait_until - now)))
                if c.evicted_upto and last < c.evicted_upto:
                    oldest = c.history[0].rv if c.history else c.rv
                    batch.append(("ERROR", {"kind": "Status", "apiVersion": "v1",
                                            "metadata": {}, "status": "Failure",
                                            "message": "too old resource version: %d (%d)" % (
                                                last, oldest - 1),
                                            "reason": "Expired", "code": 410}))
                    last = c.rv
                elif c.rv > last:
                    new_events = []
                    for ev in reversed(c.history):
                        if ev.rv <= last:
                            break
                        new_events.append(ev)
                    for ev in reversed(new_events):
                        t = translate(ev)
                        if t:
                            batch.append(t)
                    last = c.rv
                bm_rv = c.last_rv.get(rt.storage, 0)
            for etype, obj in batch:
                emit(etype, obj)
                if etype == "ERROR":
                    finish()
                    return
            if next_bm is not None and time.time() >= next_bm:
                if bm_rv > start_rv:
                    bm = {"kind": rt.kind, "apiVersion": rt.api_version,
                          "metadata": {"resourceVersion": str(bm_rv), "creationTimestamp": None}}
                    bm.update(copy.deepcopy(BOOKMARK_EXTRA.get(rt.kind, {})))
                    emit("BOOKMARK", bm)
                nb = time.time() + 60
                next_bm = nb if nb < deadline - 2 else (deadline - 2 if next_bm < deadline - 2
                                                       else None)
        finish()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def write_kubeconfig(path, host, port):
    # Any token is accepted; a distinctive one, because deployer masks kubeconfig tokens in
    # Actions (a token like `fake` would mask every "fake" in the log) and tests grep for it.
    text = """apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://%s:%d
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
users:
- name: fake
  user:
    token: fake-k8s-bearer-token-7Qm2
""" % (host, port)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API server for tests "
                                 "(stdlib only).")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiply every controller/kubelet delay (0.2 = 5x faster)")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for this server to PATH")
    ap.add_argument("--watch-history", type=int, default=10000,
                    help="events kept for watch resumption; older resourceVersions get 410")
    ap.add_argument("--stale-status-hold", type=float, default=0.0, metavar="SECONDS",
                    help="after writing a new generation's first status that still carries the "
                    "previous rollout's ProgressDeadlineExceeded (a rollback to an existing "
                    "ReplicaSet, 1 replica), do not sync that Deployment again for SECONDS "
                    "(scaled by --time-scale), like a throttled kube-controller-manager "
                    "(recording 12: 9 ms to 1.25 s); default 0 = the next tick")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    if args.time_scale <= 0:
        ap.error("--time-scale must be > 0")

    cluster = Cluster(time_scale=args.time_scale, history=max(10, args.watch_history))
    cluster.stale_status_hold = max(0.0, args.stale_status_hold)
    bootstrap(cluster)
    Handler.cluster = cluster
    Handler.verbose = args.verbose
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]
    if args.kubeconfig:
        write_kubeconfig(args.kubeconfig, args.host, port)
    ControllerManager(cluster).start()

    def stop(signum, frame):
        cluster.stopping = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("serving on http://%s:%d (time-scale %s)" % (args.host, port, args.time_scale))
    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        cluster.stopping = True
        with cluster.lock:
            cluster.cond.notify_all()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
