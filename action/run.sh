#!/usr/bin/env bash
# Runs the installed deployer with the action's inputs. The binary itself does everything else
# (masking, log groups, summary, outputs), exactly as the CLI does.
#
# No input is ever expanded by the shell: `services` splits on whitespace only, `images` is one
# SERVICE=REF per line, and `args` splits into words the way a shell would *quote* them ('...',
# "...", backslash) but nothing is globbed or substituted: `*`, `$X`, `$(...)` stay as written.
set -euo pipefail
fail() { echo "::error title=deployer::$*"; exit 2; }

args=("${INPUT_COMMAND:-deploy}" --config "${INPUT_CONFIG:-deployer.yaml}")
[ -n "${INPUT_ENVIRONMENT:-}" ] && args+=(--env "$INPUT_ENVIRONMENT")
[ -n "${INPUT_ROLE_ARN:-}" ] && args+=(--role-arn "$INPUT_ROLE_ARN")
# Whitespace-separated service names, without globbing (`read -a` never expands `*`).
read -r -d '' -a services <<< "${INPUT_SERVICES:-}" || true
for s in "${services[@]}"; do args+=(--service "$s"); done
while IFS= read -r line; do
  line="${line#"${line%%[![:space:]]*}"}"; line="${line%"${line##*[![:space:]]}"}"
  [ -n "$line" ] && args+=(--image "$line")
done <<< "${INPUT_IMAGES:-}"
if [ -n "${INPUT_ARGS:-}" ]; then
  # xargs splits on blanks and newlines honouring quotes and backslashes, and expands nothing;
  # each word comes back NUL-terminated, so spaces inside quotes survive.
  words="$(mktemp "${RUNNER_TEMP:-/tmp}/deployer-args.XXXXXX")"
  # A backslash at the end of a line continues it, as in a shell.
  printf '%s\n' "${INPUT_ARGS//\\$'\n'/ }" | xargs -r printf '%s\0' > "$words" 2>"$words.err" \
    || fail "cannot split the \`args\` input: $(tr '\n' ' ' < "$words.err")(close every quote; use \\\" or ' inside)"
  while IFS= read -r -d '' w; do args+=("$w"); done < "$words"
  rm -f "$words" "$words.err"
fi
exec "${DEPLOYER_BIN:?install step did not run}" "${args[@]}"
