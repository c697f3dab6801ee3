#!/usr/bin/env bash
# The action's build step: the inputs (INPUT_* variables, set by action.yml) become a `hoist build`,
# whose results go to $GITHUB_OUTPUT as imageid, digest and metadata.
set -euo pipefail
hoist="$(cd "$(dirname "$0")/.." && pwd)/bin/hoist"
work=$(mktemp -d "${RUNNER_TEMP:-/tmp}/hoist-action-XXXXXX")
trap 'rm -rf "$work"' EXIT

# One item a line, blank lines and surrounding spaces dropped; `commas` also splits on commas.
items() { printf '%s\n' "$1" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | grep -v '^$' || true; }
commas() { items "$(printf '%s' "$1" | tr ',' '\n')"; }
is_true() { [ "${1,,}" = true ]; }

if [ -n "${INPUT_REGISTRY-}" ]; then
  printf '%s' "${INPUT_PASSWORD-}" | "$hoist" login -u "${INPUT_USERNAME-}" --password-stdin "$INPUT_REGISTRY"
fi

args=(build --progress plain --iidfile "$work/iid" --metadata-file "$work/metadata.json")
[ -n "${INPUT_FILE-}" ] && args+=(-f "$INPUT_FILE")
[ -n "${INPUT_TARGET-}" ] && args+=(--target "$INPUT_TARGET")
is_true "${INPUT_PUSH-false}" && args+=(--push)
is_true "${INPUT_NO_CACHE-false}" && args+=(--no-cache)
# Attestations as build-push-action makes them: provenance and sbom as given (true, false, or
# keys such as mode=max), attests one --attest a line; provenance unset is hoist's default when
# pushing (mode=min), and mode=max for a public repository. The builder ID is the run's URL.
pushing=false
is_true "${INPUT_PUSH-false}" && pushing=true
items "${INPUT_OUTPUTS-}" | grep -Eq '(^|,) *(type=registry|push=true) *(,|$)' && pushing=true
[ -n "${INPUT_PROVENANCE-}" ] && args+=(--provenance "$INPUT_PROVENANCE")
[ -z "${INPUT_PROVENANCE-}" ] && [ "$pushing" = true ] && [ "${HOIST_REPOSITORY_PRIVATE-}" = false ] && args+=(--provenance mode=max)
[ -n "${INPUT_SBOM-}" ] && args+=(--sbom "$INPUT_SBOM")
while IFS= read -r spec; do args+=(--attest "$spec"); done < <(items "${INPUT_ATTESTS-}")
# Several platforms make one index; RUN for another platform needs QEMU (docker/setup-qemu-action).
while IFS= read -r platform; do args+=(--platform "$platform"); done < <(commas "${INPUT_PLATFORMS-}")
while IFS= read -r tag; do args+=(-t "$tag"); done < <(commas "${INPUT_TAGS-}")
while IFS= read -r arg; do args+=(--build-arg "$arg"); done < <(items "${INPUT_BUILD_ARGS-}")
while IFS= read -r label; do args+=(--label "$label"); done < <(items "${INPUT_LABELS-}")
while IFS= read -r spec; do args+=(--cache-from "$spec"); done < <(items "${INPUT_CACHE_FROM-}")
while IFS= read -r spec; do args+=(--cache-to "$spec"); done < <(items "${INPUT_CACHE_TO-}")
while IFS= read -r spec; do args+=(--output "$spec"); done < <(items "${INPUT_OUTPUTS-}")
while IFS= read -r spec; do args+=(--build-context "$spec"); done < <(items "${INPUT_BUILD_CONTEXTS-}")
# Secrets reach hoist through the environment, never its command line.
n=0
while IFS= read -r secret; do
  n=$((n + 1))
  export "HOIST_ACTION_SECRET_$n=${secret#*=}"
  args+=(--secret "id=${secret%%=*},env=HOIST_ACTION_SECRET_$n")
done < <(items "${INPUT_SECRETS-}")

"$hoist" "${args[@]}" "${INPUT_CONTEXT:-.}"

digest=$(sed -n 's/.*"containerimage.digest": *"\(sha256:[a-f0-9]*\)".*/\1/p' "$work/metadata.json")
delimiter="hoist_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
{
  echo "imageid=$(cat "$work/iid")"
  echo "digest=$digest"
  echo "metadata<<$delimiter"
  cat "$work/metadata.json"
  echo
  echo "$delimiter"
} >> "$GITHUB_OUTPUT"
