#!/usr/bin/env bash
# `npm run bench [-- WORKLOAD...]`: hoist's benchmarks, and rootless buildah on the same workloads
# (bench/README.md), as an unprivileged user (see unprivileged.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/node-env.sh"
. "$repo/scripts/unprivileged.sh"
cd "$repo"
as_unprivileged scripts/bench.sh "$@"
exec node test/bench/run.ts "$@"
