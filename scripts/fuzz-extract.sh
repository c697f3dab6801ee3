#!/usr/bin/env bash
# `scripts/fuzz-extract.sh [SEQUENCES] [SEED] [FINDINGS]`: runs the layer extraction fuzzer
# (test/layers/extract-fuzz.test.ts) on more sequences than CI's 1500 (default 20000), or on another
# seed (default: the time), as an unprivileged user (see unprivileged.sh). Each failure, shrunk, is
# appended to FINDINGS (default fuzz-findings.md in the current directory) as it is found.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/node-env.sh"
. "$repo/scripts/unprivileged.sh"
sequences=${1:-20000}
seed=${2:-$(date +%s)}
findings=$(realpath -m "${3:-fuzz-findings.md}")
if [ "$(id -u)" = 0 ]; then touch "$findings" && chmod a+w "$findings"; fi
as_unprivileged scripts/fuzz-extract.sh "$sequences" "$seed" "$findings"
cd "$repo"
echo "extract fuzz: $sequences sequences, seed $seed, findings in $findings" >&2
HOIST_FUZZ_SEQUENCES=$sequences HOIST_FUZZ_SEED=$seed HOIST_FUZZ_FINDINGS=$findings \
  exec npx vitest run --configLoader runner test/layers/extract-fuzz.test.ts -t 'random layer sequences'
