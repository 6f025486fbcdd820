#!/usr/bin/env python3
"""Concurrency and memory of a whole deploy (issue 10), with the real binary against the fake
Kubernetes API server at the test bed's contract time scale (1.0: a pod is Ready ~0.3 s after it is
bound, as TESTBED.md's "Behaviour contract" says) and moto for STS.

Products are generated from the example's `user` service: one with a single service (the peer:
"the slowest single service", every service being alike) and one with N. Each round releases
  * one: the single-service product with a new digest;
  * all: the N-service product with new digests for every service;
after each release every Deployment must run the new digest (so every service really rolled out)
and nothing may have been pruned. Each round runs both; per round the ratio all/one (services roll out concurrently, so the target
is <= 1.2); the table shows the median of the rounds. Also per deploy: deployer's own peak RSS
(VmHWM from /proc, its kubectl/kustomize children excluded), its own CPU time (user+sys from
wait4 minus what its waited-for children used), the kustomize children's CPU, the fake API
server's CPU, and the phase timeline from `--output json` events.

Run:   .venv/bin/python bench/deploy.py [--rounds 3] [--sizes 10,20] [--events DIR] [--history K]
       (builds and uses target/release/deployer; DEPLOYER_BIN=PATH uses another binary)
"""
import argparse, hashlib, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv/bin/python"
TICK = os.sysconf("SC_CLK_TCK")


def launch(args):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    assert line.startswith("LISTENING"), line
    return p, int(line.split()[1])


def cpu_of(pid):
    """(own user+sys, waited-for children's user+sys) of a live process, in seconds."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the `)`: field 3 is state, so utime (14) is index 11 here.
    return (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK


def product(n, work):
    """A product of N copies of the example's `user` service, its objects, records and lock in
    namespace `gen<N>` (deployer refuses objects outside the environment's namespace), so
    products of different sizes do not share objects."""
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
            f.write_text(f.read_text().replace("user", s).replace("namespace: shop-dev", f"namespace: gen{n}"))
        # The manifests name the image `shop/<service>`: the repository must match, or deployer
        # has nothing to pin and the release changes no pod.
        lines.append(f'  - {{ name: {s}, repository: shop/{s}, kustomize: "services/{s}/k8s/overlays/{{env}}" }}')
    (d / "deployer.yaml").write_text("\n".join(lines) + "\n")
    return d


def images(n, version):
    out = []
    for i in range(1, n + 1):
        s = f"svc{i:02d}"
        dg = hashlib.sha256(f"{s}-{version}".encode()).hexdigest()
        out += ["--image", f"{s}=registry.local/shop/{s}@sha256:{dg}"]
    return out


def timeline(events, t0):
    """Phase → (start s, duration s) relative to the process start (first occurrence each)."""
    out, starts = {}, {}
    for e in events:
        ts = e.get("ts")
        if not ts:
            continue
        t = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0" + ts[19:-1])
        if e["event"] == "phase-started":
            starts.setdefault(e["phase"], t - t0)
        elif e["event"] == "phase-finished" and e["phase"] not in out:
            out[e["phase"]] = (starts.get(e["phase"], 0.0), e["elapsed_ms"] / 1000)
    return out


def deploy(env, binary, d, args, fake, keep=None):
    fake_cpu0 = sum(cpu_of(fake.pid))
    t0_wall = time.time()
    t0 = time.monotonic()
    out = tempfile.TemporaryFile()
    p = subprocess.Popen([str(binary), "--config", str(d / "deployer.yaml"), "deploy", "--env", "dev",
                          "--output", "json", *args], env=env, stdout=out, stderr=subprocess.PIPE)
    peak_kib, children_cpu, fake_samples = 0, 0.0, []
    while True:
        fake_samples.append((time.time(), sum(cpu_of(fake.pid))))
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
            children_cpu = cpu_of(p.pid)[1]
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.005)
    wall = time.monotonic() - t0
    # wait4's rusage is the process's own plus its waited-for children's.
    total = ru.ru_utime + ru.ru_stime
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode()
    out.seek(0)
    text = out.read().decode()
    assert p.returncode == 0, err + text[-3000:]
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    if keep is not None:
        keep.write_text(text)
    phases = timeline(events, t0_wall)
    apply_at = t0_wall + phases.get("apply", (wall, 0))[0]
    fake_plan = max((c for t, c in fake_samples if t <= apply_at), default=fake_cpu0) - fake_cpu0
    return {"fake_cpu_plan": fake_plan, "wall": wall, "rss": peak_kib / 1024, "kustomize_cpu": children_cpu, "total": total,
            "fake_cpu": sum(cpu_of(fake.pid)) - fake_cpu0, "phases": phases,
            "pruned": sum(1 for e in events if e.get("event") == "service" and e.get("message", "").startswith("pruned"))}


def fmt_phases(ph):
    keep = ["plan", "render", "lock", "apply", "health", "record"]
    return " ".join(f"{k}@{ph[k][0]:.2f}+{ph[k][1]:.2f}" for k in keep if k in ph)


def measure(n, binary, rounds, events_dir, history):
    """Rounds of one-service and N-service releases against a fresh fake API server (so the
    fake's background work is that of these two products only)."""
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

    def prepare(size):
        d = product(size, work)
        for name in (f"gen{size}",):
            ns = '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"%s"}}' % name
            r = subprocess.run([*kubectl, "apply", "--server-side", "-f", "-"], input=ns, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        for h in range(max(1, history)):  # untimed releases: the first, then history records to decode
            deploy(env, binary, d, images(size, 1000 + h), fake)
        return d

    def release(size, d, version, tag, path):
        m = deploy(env, binary, d, images(size, version), fake, path)
        # Every Deployment runs the new digest: the release really rolled every service.
        out = subprocess.run([*kubectl, "get", "deploy", "-n", f"gen{size}", "-o",
                              "jsonpath={.items[*].spec.template.spec.containers[0].image}"],
                             capture_output=True, text=True, check=True).stdout.split()
        want = sorted(images(size, version)[1::2])
        assert sorted(x.split("=", 1)[1] for x in want) == sorted(out), (tag, out)
        assert m["pruned"] == 0, m
        return m

    try:
        one_d = prepare(1)
        d = prepare(n)
        time.sleep(2)
        c0 = sum(cpu_of(fake.pid))
        time.sleep(3)
        idle = (sum(cpu_of(fake.pid)) - c0) / 3
        print(f"N={n}: fake API server idle (controllers ticking over both products): {idle:.2f} CPU s/s")
        ratios, ones, alls, loads = [], [], [], []
        for r in range(1, rounds + 1):
            k = (lambda tag: events_dir / f"n{n}-r{r}-{tag}.jsonl") if events_dir else (lambda tag: None)
            one = release(1, one_d, r, "one", k("one"))
            al = release(n, d, r, "all", k("all"))
            load = os.getloadavg()[0]
            ratios.append(al["wall"] / one["wall"])
            ones.append(one)
            alls.append(al)
            loads.append(load)
            for tag, m in (("one", one), ("all", al)):
                own = m["total"] - m["kustomize_cpu"]
                print(f"N={n} round {r} {tag:3}: wall {m['wall']:.2f} s  rss {m['rss']:.1f} MiB  "
                      f"cpu deployer {own:.2f} s, kustomize {m['kustomize_cpu']:.2f} s, fake {m['fake_cpu']:.2f} s "
                      f"(before apply {m['fake_cpu_plan']:.2f})  {fmt_phases(m['phases'])}", flush=True)
            print(f"N={n} round {r}: ratio {ratios[-1]:.2f}, load {load:.1f}", flush=True)
    finally:
        for p in (fake, moto):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    return (n, med([m["wall"] for m in ones]), med([m["wall"] for m in alls]),
            ", ".join(f"{x:.2f}" for x in ratios), med(ratios), max(m["rss"] for m in alls),
            med([m["total"] - m["kustomize_cpu"] for m in alls]),
            med([m["kustomize_cpu"] for m in alls]), med([m["fake_cpu"] for m in alls]),
            f"{min(loads):.1f}–{max(loads):.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="10,20")
    ap.add_argument("--events", type=Path, help="keep each deploy's JSON events here")
    ap.add_argument("--history", type=int, default=1,
                    help="untimed releases before the rounds (deployer keeps up to 20 release records, "
                         "and every deploy reads them all)")
    a = ap.parse_args()
    binary = os.environ.get("DEPLOYER_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--bin", "deployer"], cwd=ROOT, check=True)
        binary = ROOT / "target/release/deployer"
    if a.events:
        a.events.mkdir(parents=True, exist_ok=True)
    print(f"binary {binary}; {os.cpu_count()} cores; load average at start {os.getloadavg()}")
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        rows.append(measure(n, binary, a.rounds, a.events, a.history))
    print()
    print("| N | one service (1-service product) | all N services | ratio per round | median ratio (≤ 1.2) | peak RSS (≤ 50 MB at 20) "
          "| all N: deployer CPU | kustomize CPU | fake API CPU | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, o, al, rs, mr, rss, c1, c2, c3, ld in rows:
        print(f"| {n} | {o:.2f} s | {al:.2f} s | {rs} | **{mr:.2f}** | {rss:.1f} MiB | {c1:.2f} s | {c2:.2f} s "
              f"| {c3:.2f} s | {ld} |")


if __name__ == "__main__":
    sys.exit(main())
