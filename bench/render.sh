#!/usr/bin/env bash
# Render overhead: `deployer plan` (config + wrapper kustomization + kustomize + parsing, all services)
# against plain `kubectl kustomize` of the same overlays, measured in the same run with hyperfine.
# Usage: bash bench/render.sh   (needs .ci/setup; writes bench/out/render-*.json)
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECTL="$PWD/.venv/bin/kubectl"
export DEPLOYER_KUSTOMIZE="$KUBECTL" DEPLOYER_BUILDER=buildah
# DEPLOYER_BIN=target/debug/deployer skips the release build (a debug binary only overstates our overhead).
if [ -z "${DEPLOYER_BIN:-}" ]; then cargo build -q --release; DEPLOYER_BIN="$PWD/target/release/deployer"; fi
BIN="$(realpath "$DEPLOYER_BIN")"; echo "binary: $BIN"
OUT="$PWD/bench/out"; mkdir -p "$OUT"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# A generated 20-service product: the example's `user` service copied under 20 names.
GEN="$WORK/gen20"; mkdir -p "$GEN/services" "$GEN/environments"
cp -r examples/shop/components "$GEN/components"
cp examples/shop/environments/dev.yaml "$GEN/environments/dev.yaml"
{ echo 'product: gen'; echo 'registry: { account_id: "111111111111", region: eu-west-1 }'; echo 'services:'; } > "$GEN/deployer.yaml"
for i in $(seq -w 1 20); do
  s="svc$i"; cp -r examples/shop/services/user "$GEN/services/$s"
  grep -rl 'user' "$GEN/services/$s/k8s" | xargs sed -i "s/user/$s/g"
  echo "  - { name: $s, repository: gen/$s, build: { context: services/$s }, kustomize: \"services/$s/k8s/overlays/{env}\" }" >> "$GEN/deployer.yaml"
done

run() { # name product-dir
  local name=$1 dir=$2 overlays
  overlays=$(ls -d "$dir"/services/*/k8s/overlays/dev | tr '\n' ' ')
  hyperfine -N --warmup 2 --runs 10 --export-json "$OUT/render-$name.json" \
    -n "deployer plan ($name)" "$BIN --config $dir/deployer.yaml plan --env dev -q" \
    -n "kubectl kustomize, serial ($name)" "bash -c 'for o in $overlays; do $KUBECTL kustomize \$o >/dev/null; done'" \
    -n "kubectl kustomize, 2 parallel ($name)" "bash -c 'printf \"%s\n\" $overlays | xargs -P2 -I{} $KUBECTL kustomize {} >/dev/null'"
}
run shop4 "$PWD/examples/shop"
run gen20 "$GEN"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for name in ("shop4", "gen20"):
    r = {x["command"]: x["mean"] for x in json.loads((out / f"render-{name}.json").read_text())["results"]}
    ours = next(v for k, v in r.items() if k.startswith("deployer"))
    serial = next(v for k, v in r.items() if "serial" in k)
    par = next(v for k, v in r.items() if "parallel" in k)
    print(f"{name}: deployer {ours*1000:.0f} ms · plain serial {serial*1000:.0f} ms (ratio {ours/serial:.2f}) · plain 2-parallel {par*1000:.0f} ms (ratio {ours/par:.2f})")
PY
