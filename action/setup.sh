#!/usr/bin/env bash
# The action's one-time setup on a runner: newuidmap/newgidmap, user namespaces allowed, hoist's
# npm dependencies and its sandbox helper. The runner's user has passwordless sudo.
set -euo pipefail
hoist_dir=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v newuidmap >/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uidmap >/dev/null
fi
# Ubuntu 24.04 lets AppArmor refuse unprivileged user namespaces unless a profile allows them.
if [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
  sudo sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0
fi
# A subordinate id range for the runner's user, as useradd gives new users.
if ! grep -q "^$(id -un):" /etc/subuid 2>/dev/null; then
  echo "$(id -un):200000:65536" | sudo tee -a /etc/subuid /etc/subgid >/dev/null
fi
(cd "$hoist_dir" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
echo "$hoist_dir/bin" >> "$GITHUB_PATH"
