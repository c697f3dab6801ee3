#!/usr/bin/env bash
# After the build: AppArmor's ban on unprivileged user namespaces back on, where setup.sh lifted it.
set -euo pipefail
marker="${RUNNER_TEMP:-/tmp}/hoist-apparmor-restore"
if [ -e "$marker" ]; then
  sudo sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=1
  rm -f "$marker"
fi
