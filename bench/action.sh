#!/usr/bin/env bash
# `deployer --version` through the action's path (install.sh + run.sh), measured from step start:
# once with the binary in the tool cache (re-hashed against the pinned checksum), once with a fresh
# download + sha256 verification from a local release server. The action ref is a copy of action/
# whose SHA256SUMS pins the published binary, as the release workflow's tagged commit does. Usage: bash bench/action.sh  (DEPLOYER_BIN picks the binary to publish)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DEPLOYER_BIN:-}" ]; then cargo build -q --release; DEPLOYER_BIN=target/release/deployer; fi
BIN="$(realpath "$DEPLOYER_BIN")"
W=$(mktemp -d); trap 'kill $SRV 2>/dev/null; rm -rf "$W"' EXIT
REL="$W/srv/example-org/deployer/releases/download/$(cat action/VERSION)"; mkdir -p "$REL"
cp "$BIN" "$REL/deployer-x86_64-unknown-linux-musl"
mkdir -p "$W/ref/action" && cp action/VERSION action/install.sh action/run.sh "$W/ref/action/"
(cd "$REL" && sha256sum deployer-x86_64-unknown-linux-musl) > "$W/ref/action/SHA256SUMS"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$W/srv" >/dev/null 2>&1 & SRV=$!
sleep 1
cat > "$W/step.sh" <<SH
set -e
export ACTION_PATH=$W/ref ACTION_REPOSITORY=example-org/deployer GITHUB_SERVER_URL=http://127.0.0.1:$PORT
export RUNNER_OS=Linux RUNNER_ARCH=X64 RUNNER_TOOL_CACHE=$W/cache RUNNER_TEMP=$W GITHUB_OUTPUT=$W/out
: > \$GITHUB_OUTPUT
bash $W/ref/action/install.sh >/dev/null
DEPLOYER_BIN=\$(sed -n 's/^path=//p' \$GITHUB_OUTPUT) INPUT_COMMAND=--version bash $PWD/action/run.sh
SH
echo "binary: $BIN ($(du -h "$BIN" | cut -f1))"
hyperfine -N --warmup 1 --runs 10 --export-json "$W/cached.json" -n "cached" "bash $W/step.sh"
hyperfine -N --runs 10 --prepare "rm -rf $W/cache" --export-json "$W/fresh.json" -n "fresh download" "bash $W/step.sh"
