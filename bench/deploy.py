#!/usr/bin/env python3
"""Concurrency and memory of a whole deploy (issue 10), with the real binary against the fake
Kubernetes API server at real time scale (1.0) and moto for STS.

For a generated product of N services (copies of the example's `user` service):
  * single: a release of one service (`--service svc01`), new digest;
  * all:    a release of all N services, new digests;
wall time of each (median of 3), the ratio all/single (services roll out concurrently, so the
target is <= 1.2), and the deployer process's peak RSS (from wait4) for N = 10 and N = 20.

Run: .venv/bin/python bench/deploy.py   (after `bash .ci/setup` and `cargo build`)
"""
import hashlib, os, re, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv/bin/python"
BIN = Path(os.environ.get("DEPLOYER_BIN", ROOT / "target/debug/deployer"))


def launch(args):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    assert line.startswith("LISTENING"), line
    return p, int(line.split()[1])


def product(n, work):
    d = work / f"gen{n}"
    (d / "services").mkdir(parents=True)
    shutil.copytree(ROOT / "examples/shop/components", d / "components")
    (d / "environments").mkdir()
    (d / "environments/dev.yaml").write_text(
        'account_id: "123456789012"\nregion: eu-west-1\n'
        f"target:\n  eks: {{ context: fake, namespace: gen{n} }}\ntimeouts: {{ rollout: 5m }}\n")
    lines = ["product: gen", 'registry: { account_id: "111111111111", region: eu-west-1 }', "services:"]
    for i in range(1, n + 1):
        s = f"svc{i:02d}"
        shutil.copytree(ROOT / "examples/shop/services/user", d / "services" / s)
        for f in (d / "services" / s / "k8s").rglob("*.yaml"):
            f.write_text(f.read_text().replace("user", s))
        lines.append(f'  - {{ name: {s}, repository: gen/{s}, kustomize: "services/{s}/k8s/overlays/{{env}}" }}')
    (d / "deployer.yaml").write_text("\n".join(lines) + "\n")
    return d


def images(n, version, only=None):
    out = []
    for i in range(1, n + 1):
        s = f"svc{i:02d}"
        if only and s != only:
            continue
        dg = hashlib.sha256(f"{s}-{version}".encode()).hexdigest()
        out += ["--image", f"{s}=registry.local/gen/{s}@sha256:{dg}"]
    return out


def deploy(env, d, args):
    t0 = time.monotonic()
    p = subprocess.Popen([str(BIN), "--config", str(d / "deployer.yaml"), "deploy", "--env", "dev", "-q", *args],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # deployer's own peak resident memory, sampled every 5 ms (wait4's ru_maxrss would include
    # the kustomize children, which are kubectl processes).
    peak_kib = 0
    while p.poll() is None:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.005)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode()
    assert p.returncode == 0, err
    return wall, peak_kib / 1024  # MiB


def main():
    work = Path(tempfile.mkdtemp(prefix="deployer-bench-"))
    kubeconfig = work / "kubeconfig"
    fake, _ = launch([str(PY), str(ROOT / "tests/fakes/fake_k8s.py"), "--port", "0", "--time-scale", "1.0",
                      "--kubeconfig", str(kubeconfig)])
    moto, moto_port = launch([str(PY), str(ROOT / "tests/fakes/moto_ecs.py"), "--port", "0", "--log-level", "WARNING"])
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "KUBECONFIG": str(kubeconfig),
           "DEPLOYER_KUSTOMIZE": str(ROOT / ".venv/bin/kubectl"), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    kubectl = [str(ROOT / ".venv/bin/kubectl"), "--kubeconfig", str(kubeconfig)]
    try:
        results = {}
        for n in (10, 20):
            d = product(n, work)
            # Records and the lock live in gen<N>; the overlays put the objects in shop-dev.
            for name in (f"gen{n}", "shop-dev"):
                ns = '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"%s"}}' % name
                r = subprocess.run([*kubectl, "apply", "--server-side", "-f", "-"], input=ns, capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
            deploy(env, d, images(n, 0))  # first release, not timed
            singles, alls, rss = [], [], []
            for r in range(1, 4):
                w, m = deploy(env, d, ["--service", "svc01", *images(n, 2 * r - 1, only="svc01")])
                singles.append(w)
                w, m2 = deploy(env, d, images(n, 2 * r))
                alls.append(w)
                rss += [m, m2]
            results[n] = (statistics.median(singles), statistics.median(alls), max(rss))
            s, a, m = results[n]
            print(f"{n} services: one service {s:.2f} s, all {n} services {a:.2f} s, ratio {a / s:.2f}; peak RSS {m:.1f} MiB")
    finally:
        for p in (fake, moto):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
