#!/usr/bin/env bash
# Installs the deployer release binary for this runner: download from the action's GitHub release,
# verify its sha256 against the release's published SHA256SUMS (fail closed), cache it per version.
# Inputs (env): INPUT_VERSION, ACTION_REPOSITORY (owner/repo), ACTION_PATH, GITHUB_SERVER_URL,
# RUNNER_OS, RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_OUTPUT. Output: path=<binary>.
set -euo pipefail

fail() { echo "::error title=deployer install::$*"; exit 1; }

version="${INPUT_VERSION:-}"
if [ -z "$version" ]; then
  version="$(tr -d '[:space:]' < "${ACTION_PATH:?}/action/VERSION")"
fi
case "$version" in v*) ;; *) version="v$version" ;; esac

case "${RUNNER_OS:-Linux}/${RUNNER_ARCH:-X64}" in
  Linux/X64) target="x86_64-unknown-linux-musl" ;;
  Linux/ARM64) target="aarch64-unknown-linux-musl" ;;
  *) fail "no deployer build for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; supported: Linux/X64, Linux/ARM64" ;;
esac
asset="deployer-$target"

cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/deployer/$version/$target"
bin="$cache/deployer"
if [ -x "$bin" ] && [ -f "$cache/.verified" ]; then
  echo "deployer $version ($target) from the tool cache"
  echo "path=$bin" >> "$GITHUB_OUTPUT"
  exit 0
fi

repo="${ACTION_REPOSITORY:?the action repository is unknown}"
base="${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download/$version"
tmp="$(mktemp -d "${RUNNER_TEMP:-/tmp}/deployer-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

fetch() { # url dest
  curl --fail --silent --show-error --location --retry 3 --retry-delay 1 --connect-timeout 10 --max-time 120 \
    -o "$2" "$1" 2>"$tmp/curl.err" || fail "cannot download $1: $(tr '\n' ' ' < "$tmp/curl.err")"
}
fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS"
fetch "$base/$asset" "$tmp/$asset"

expected="$(awk -v a="$asset" '$2 == a || $2 == "*"a { print $1 }' "$tmp/SHA256SUMS")"
[ -n "$expected" ] || fail "SHA256SUMS of $version lists no $asset; refusing to run an unverified binary"
actual="$(sha256sum "$tmp/$asset" | awk '{ print $1 }')"
if [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $asset $version: expected $expected, got $actual; refusing to run it"
fi

mkdir -p "$cache"
install -m 0755 "$tmp/$asset" "$bin"
touch "$cache/.verified"
echo "deployer $version ($target) downloaded and verified (sha256 $actual)"
echo "path=$bin" >> "$GITHUB_OUTPUT"
