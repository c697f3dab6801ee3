#!/usr/bin/env bash
# Runs the type check and the test suite, as an unprivileged user (see unprivileged.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/node-env.sh"
. "$repo/scripts/unprivileged.sh"
cd "$repo"
as_unprivileged scripts/test.sh "$@"
npx tsc -p tsconfig.json
exec npx vitest run --configLoader runner "$@"
