#!/usr/bin/env bash
# Runs the installed deployer with the action's inputs. The binary itself does everything else
# (masking, log groups, summary, outputs), exactly as the CLI does.
set -euo pipefail
args=("${INPUT_COMMAND:-deploy}" --config "${INPUT_CONFIG:-deployer.yaml}")
[ -n "${INPUT_ENVIRONMENT:-}" ] && args+=(--env "$INPUT_ENVIRONMENT")
for s in ${INPUT_SERVICES:-}; do args+=(--service "$s"); done
while IFS= read -r line; do
  line="${line#"${line%%[![:space:]]*}"}"; line="${line%"${line##*[![:space:]]}"}"
  [ -n "$line" ] && args+=(--image "$line")
done <<< "${INPUT_IMAGES:-}"
# Extra arguments are split on whitespace on purpose (flags and values without spaces).
# shellcheck disable=SC2206
[ -n "${INPUT_ARGS:-}" ] && args+=(${INPUT_ARGS})
exec "${DEPLOYER_BIN:?install step did not run}" "${args[@]}"
