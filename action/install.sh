#!/usr/bin/env bash
# Installs the deployer release binary for this runner: download it from the action's GitHub
# release, verify its sha256 against action/SHA256SUMS *committed in this action ref* (the
# release workflow commits it in the tagged commit), cache it per version. The release's own
# files are never trusted: pinning the action to a commit pins the binary too. Fail closed.
# Inputs (env): ACTION_REPOSITORY (owner/repo), ACTION_PATH, GITHUB_SERVER_URL, RUNNER_OS,
# RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_OUTPUT. Output: path=<binary>.
set -euo pipefail

fail() { echo "::error title=deployer install::$*"; exit 1; }

version="$(tr -d '[:space:]' < "${ACTION_PATH:?}/action/VERSION")"
case "$version" in v*) ;; *) version="v$version" ;; esac

case "${RUNNER_OS:-Linux}/${RUNNER_ARCH:-X64}" in
  Linux/X64) target="x86_64-unknown-linux-musl" ;;
  Linux/ARM64) target="aarch64-unknown-linux-musl" ;;
  *) fail "no deployer build for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; supported: Linux/X64, Linux/ARM64" ;;
esac
asset="deployer-$target"

sums="$ACTION_PATH/action/SHA256SUMS"
expected="$(awk -v a="$asset" '$1 !~ /^#/ && ($2 == a || $2 == "*"a) { print $1 }' "$sums" 2>/dev/null || true)"
[ -n "$expected" ] || fail "action/SHA256SUMS at this action ref lists no $asset for $version; use a released ref of the action (e.g. \`uses: $ACTION_REPOSITORY@$version\` or @${version%%.*}): only the release workflow commits checksums, in the tagged commit"

cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/deployer/$version/$target"
bin="$cache/deployer"
# The cache is trusted only for the exact bytes this ref pins.
if [ -x "$bin" ] && [ "$(sha256sum "$bin" | awk '{ print $1 }')" = "$expected" ]; then
  echo "deployer $version ($target) from the tool cache (sha256 $expected)"
  echo "path=$bin" >> "$GITHUB_OUTPUT"
  exit 0
fi

repo="${ACTION_REPOSITORY:?the action repository is unknown}"
base="${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download/$version"
tmp="$(mktemp -d "${RUNNER_TEMP:-/tmp}/deployer-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

curl --fail --silent --show-error --location --retry 3 --retry-delay 1 --connect-timeout 10 --max-time 120 \
  -o "$tmp/$asset" "$base/$asset" 2>"$tmp/curl.err" \
  || fail "cannot download $base/$asset: $(tr '\n' ' ' < "$tmp/curl.err")"

actual="$(sha256sum "$tmp/$asset" | awk '{ print $1 }')"
if [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $asset $version: action/SHA256SUMS pins $expected, the release serves $actual; refusing to run it"
fi

mkdir -p "$cache"
install -m 0755 "$tmp/$asset" "$bin"
echo "deployer $version ($target) downloaded and verified against action/SHA256SUMS (sha256 $actual)"
echo "path=$bin" >> "$GITHUB_OUTPUT"
